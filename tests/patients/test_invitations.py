"""A new patient's login has no password; the invitation link lets the patient choose one, once."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from patients.models import Patient
from tests.conftest import PASSWORD, World, client_for, password_login

NEW_PATIENT = {
    "first_name": "Nora",
    "last_name": "Weber",
    "email": "Nora.Weber@example.org",
    "date_of_birth": "1958-04-02",
    "condition": "Left hip replacement",
    "affected_side": "left",
    "notes": "",
}


def _invite_link(message: object) -> str:
    match = re.search(r"http://testserver(/accounts/set-password/\S+/)", str(message))
    assert match, message
    return match.group(1)


def test_it_creates_the_patient_with_a_login_and_no_password(world: World) -> None:
    response = client_for(world, "therapist_a").post(reverse("patient_new"), NEW_PATIENT)
    patient = Patient.objects.get(user__email="nora.weber@example.org")
    assert response.status_code == 302
    assert response["Location"] == reverse("patient_detail", args=[patient.pk])
    assert patient.therapist == world.a.therapist
    assert patient.user.username == "nora.weber@example.org"
    assert not patient.user.has_usable_password()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["nora.weber@example.org"]


def test_the_invitation_link_sets_the_password_and_signs_in(world: World) -> None:
    client_for(world, "therapist_a").post(reverse("patient_new"), NEW_PATIENT)
    link = _invite_link(mail.outbox[0].body)
    patient_browser = Client()
    form_url = patient_browser.get(link, follow=True).redirect_chain[-1][0]
    response = patient_browser.post(
        form_url, {"new_password1": "a long new secret 42", "new_password2": "a long new secret 42"}
    )
    assert response.status_code == 302
    assert patient_browser.get(reverse("today")).status_code == 200
    assert password_login(
        Client(), username="nora.weber@example.org", password="a long new secret 42"
    )


def test_the_invitation_link_works_only_once(world: World) -> None:
    client_for(world, "therapist_a").post(reverse("patient_new"), NEW_PATIENT)
    link = _invite_link(mail.outbox[0].body)
    first = Client()
    form_url = first.get(link, follow=True).redirect_chain[-1][0]
    first.post(
        form_url, {"new_password1": "a long new secret 42", "new_password2": "a long new secret 42"}
    )
    second = Client().get(link, follow=True)
    assert b"This link has expired" in second.content


def test_a_forged_token_is_refused(world: World) -> None:
    response = Client().get(
        reverse("password_set", kwargs={"uidb64": "MQ", "token": "abc-def"}), follow=True
    )
    assert response.status_code == 200
    assert b"This link has expired" in response.content


def test_the_patient_page_shows_the_pending_invitation_link(world: World) -> None:
    client = client_for(world, "therapist_a")
    client.post(reverse("patient_new"), NEW_PATIENT)
    patient = Patient.objects.get(user__email="nora.weber@example.org")
    page = client.get(reverse("patient_detail", args=[patient.pk])).content.decode()
    assert "Invitation pending" in page and "/accounts/set-password/" in page
    # The cast's patients have set their password: no link is shown for them.
    page = client.get(reverse("patient_detail", args=[world.p.pk])).content.decode()
    assert "Invitation pending" not in page


def test_it_refuses_an_email_that_already_has_a_login(world: World) -> None:
    duplicate = {**NEW_PATIENT, "email": world.q.user.email}
    response = client_for(world, "therapist_a").post(reverse("patient_new"), duplicate)
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Patient.objects.count() == 2


@pytest.mark.parametrize(
    "field, value",
    [
        ("email", "not-an-email"),
        ("affected_side", "upper"),
        ("first_name", ""),
        ("date_of_birth", "31/31/2020"),
    ],
)
def test_it_rejects_invalid_patient_details(world: World, field: str, value: str) -> None:
    response = client_for(world, "therapist_a").post(
        reverse("patient_new"), {**NEW_PATIENT, field: value}
    )
    assert response.status_code == 200
    assert Patient.objects.count() == 2


def test_editing_a_patient_keeps_their_password(world: World) -> None:
    client = client_for(world, "therapist_a")
    data = {**NEW_PATIENT, "email": "pat.new@example.org", "condition": "Revised TKA"}
    response = client.post(reverse("patient_edit", args=[world.p.pk]), data)
    assert response.status_code == 302
    world.p.refresh_from_db()
    world.p.user.refresh_from_db()
    assert world.p.condition == "Revised TKA"
    assert world.p.user.username == "pat.new@example.org"
    assert password_login(Client(), username="pat.new@example.org", password=PASSWORD)
