"""Signing in and out, for every role."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD, World, password_login


@pytest.mark.parametrize(
    "email, landing",
    [("therapist.a@example.org", "roster"), ("Patient.A@Example.org ", "today")],
)
def test_it_signs_in_with_the_email_in_any_case_and_lands_on_the_roles_home(
    world: World, email: str, landing: str
) -> None:
    client = Client()
    response = client.post(reverse("login"), {"username": email, "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse(landing)


def test_a_wrong_password_is_refused_with_a_clear_message(world: World) -> None:
    response = Client().post(
        reverse("login"), {"username": "therapist.a@example.org", "password": "wrong"}
    )
    assert response.status_code == 200
    assert "do not match" in response.content.decode()


def test_signing_out_ends_the_session(world: World) -> None:
    client = Client()
    client.force_login(world.p.user)
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("today"))["Location"].startswith(reverse("login"))


def test_a_patient_without_a_password_cannot_sign_in(world: World) -> None:
    world.p.user.set_unusable_password()
    world.p.user.save()
    assert not password_login(Client(), username=world.p.user.username, password=PASSWORD)
