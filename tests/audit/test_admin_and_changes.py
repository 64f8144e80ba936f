"""Changes made in the Django admin, a new invitation and an acknowledged alert are recorded; the
report status poll is not. The admin is driven through its real URLs, signed in as a superuser."""

import re
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core import mail
from django.db.models import Model
from django.forms import BaseForm, MultiWidget
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.models import AuditEvent
from patients.models import Exercise, Prescription, Protocol
from sessions.models import Alert, Repetition
from tests.conftest import PASSWORD, World, client_for

Action = AuditEvent.Action


@pytest.fixture
def root(db: None) -> Any:
    return get_user_model().objects.create_superuser(
        username="root@example.org", email="root@example.org", password=PASSWORD
    )


@pytest.fixture
def admin_site_client(root: Any) -> Client:
    client = Client()
    client.force_login(root)
    return client


def entries(*actions: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__in=actions).order_by("id"))


def summary(event: AuditEvent) -> tuple[str, str, str, Any, str]:
    return (event.action, event.object_type, event.object_id, event.patient_id, event.detail)


def admin_url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _bound_values(form: BaseForm) -> dict[str, Any]:
    """What the browser would send back for an unchanged form."""
    data: dict[str, Any] = {}
    for field in form:
        value = field.value()
        widget = field.field.widget
        if field.field.disabled or value is None:
            continue
        names = [field.html_name]
        if field.field.show_hidden_initial:  # a callable default (a user's date_joined)
            names.append(field.html_initial_name)
        for name in names:
            if isinstance(widget, MultiWidget):  # the admin's split date and time
                parts = widget.decompress(value) or []
                data.update({f"{name}_{index}": part for index, part in enumerate(parts)})
            else:
                data[name] = value
    return data


def change_form_data(obj: Model, user: Any, **changes: Any) -> dict[str, Any]:
    """The POST of the admin's change page for `obj`, inlines included, with `changes` applied:
    built from the admin's own form and formsets."""
    request = RequestFactory().get("/")
    request.user = user
    model_admin = admin.site._registry[type(obj)]
    forms: list[BaseForm] = [model_admin.get_form(request, obj, change=True)(instance=obj)]
    for formset_class, _inline in model_admin.get_formsets_with_inlines(request, obj):
        formset = formset_class(instance=obj, prefix=formset_class.get_default_prefix())
        forms += [formset.management_form, *formset.forms]
    data: dict[str, Any] = {}
    for form in forms:
        data.update(_bound_values(form))
    return {**data, **changes}


def assert_no_value_in_trail(*values: str) -> None:
    for row in AuditEvent.objects.values():
        assert not any(value in str(field) for field in row.values() for value in values), row


# --- Adding --------------------------------------------------------------------------------------


def test_adding_an_alert_in_the_admin_is_recorded_with_its_patient(
    world: World, root: Any, admin_site_client: Client
) -> None:
    url = admin_url(Alert, "add")
    data = {"patient": world.p.pk, "kind": "rom_stalled", "message": "Knee stuck at 70 deg"}
    assert admin_site_client.post(url, data).status_code == 302
    alert = Alert.objects.get(message="Knee stuck at 70 deg")
    [event] = entries(Action.ADMIN_ADDED)
    assert summary(event) == (Action.ADMIN_ADDED, "alert", str(alert.pk), world.p.pk, "")
    assert (event.actor, event.actor_label, event.path) == (root, "root@example.org", url)
    assert event.ip == "127.0.0.1"
    assert_no_value_in_trail("Knee stuck")


def test_adding_a_protocol_in_the_admin_records_it_and_each_inline_row(
    world: World, admin_site_client: Client
) -> None:
    squat = Exercise.objects.get(slug="squat", owner=None)
    row = {"exercise": squat.pk, "position": 0, "side": "left", "sets": 2, "reps": 8}
    row |= {"hold_s": 0, "rest_s": 30, "target_rom_deg": 90, "sessions_per_week": 3}
    data = {
        "therapist": world.a.therapist.pk,
        "name": "Hip week 1",
        "notes": "",
        "prescriptions-TOTAL_FORMS": 1,
        "prescriptions-INITIAL_FORMS": 0,
        **{f"prescriptions-0-{key}": value for key, value in row.items()},
    }
    assert admin_site_client.post(admin_url(Protocol, "add"), data).status_code == 302
    protocol = Protocol.objects.get(name="Hip week 1")
    line = protocol.prescriptions.get()
    assert [summary(event) for event in entries(Action.ADMIN_ADDED)] == [
        (Action.ADMIN_ADDED, "prescription", str(line.pk), None, ""),
        (Action.ADMIN_ADDED, "protocol", str(protocol.pk), None, ""),
    ]


# --- Changing ------------------------------------------------------------------------------------


def test_changing_one_field_of_a_patient_in_the_admin_records_its_name_only(
    world: World, root: Any, admin_site_client: Client
) -> None:
    url = admin_url(type(world.p), "change", world.p.pk)
    data = change_form_data(world.p, root, condition="Revision arthroplasty")
    assert admin_site_client.post(url, data).status_code == 302
    world.p.refresh_from_db()
    assert world.p.condition == "Revision arthroplasty"
    [event] = entries(Action.ADMIN_CHANGED)
    assert summary(event) == (
        Action.ADMIN_CHANGED,
        "patient",
        str(world.p.pk),
        world.p.pk,
        "fields: condition",
    )
    assert event.actor == root and event.path == url
    assert_no_value_in_trail("Revision", "arthroplasty")


def test_changing_a_patients_account_in_the_admin_is_recorded_for_that_patient(
    world: World, root: Any, admin_site_client: Client
) -> None:
    user = world.p.user
    url = admin_url(type(user), "change", user.pk)
    data = change_form_data(user, root, last_name="Zimmermann")
    assert admin_site_client.post(url, data).status_code == 302
    user.refresh_from_db()
    assert user.last_name == "Zimmermann"
    [event] = entries(Action.ADMIN_CHANGED)
    assert summary(event) == (
        Action.ADMIN_CHANGED,
        "user",
        str(user.pk),
        world.p.pk,
        "fields: last_name",
    )
    assert_no_value_in_trail("Zimmermann")


def test_setting_a_password_in_the_admin_records_the_field_but_not_the_password(
    world: World, root: Any, admin_site_client: Client
) -> None:
    user = world.a.therapist.user
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    secret = "Fresh-horse-battery-9"
    data = {"password1": secret, "password2": secret, "set_usable_password": "true"}
    assert admin_site_client.post(url, data).status_code == 302
    user.refresh_from_db()
    assert user.check_password(secret)
    [event] = entries(Action.ADMIN_CHANGED)
    assert summary(event) == (Action.ADMIN_CHANGED, "user", str(user.pk), None, "fields: password")
    assert_no_value_in_trail(secret, user.password)


def test_changing_and_deleting_inline_rows_records_each_row(
    world: World, root: Any, admin_site_client: Client
) -> None:
    protocol = world.a.protocol
    first, second = protocol.prescriptions.order_by("position")
    changes = {"prescriptions-0-sets": 4, "prescriptions-1-DELETE": "on"}
    data = change_form_data(protocol, root, **changes)
    assert data["prescriptions-0-id"] == first.pk  # the rows are in the order assumed above
    url = admin_url(Protocol, "change", protocol.pk)
    assert admin_site_client.post(url, data).status_code == 302
    assert not Prescription.objects.filter(pk=second.pk).exists()
    actions = (Action.ADMIN_CHANGED, Action.ADMIN_DELETED)
    assert [summary(event) for event in entries(*actions)] == [
        (Action.ADMIN_DELETED, "prescription", str(second.pk), None, ""),
        (Action.ADMIN_CHANGED, "prescription", str(first.pk), None, "fields: sets"),
        (Action.ADMIN_CHANGED, "protocol", str(protocol.pk), None, "fields: none"),
    ]


# --- Deleting ------------------------------------------------------------------------------------


def test_delete_selected_in_the_admin_records_one_entry_per_object(
    world: World, root: Any, admin_site_client: Client
) -> None:
    alerts = [world.a.alert, world.b.alert]
    data = {
        "action": "delete_selected",
        "_selected_action": [str(alert.pk) for alert in alerts],
        "post": "yes",
    }
    assert admin_site_client.post(admin_url(Alert, "changelist"), data).status_code == 302
    assert not Alert.objects.filter(pk__in=[alert.pk for alert in alerts]).exists()
    recorded = entries(Action.ADMIN_DELETED)
    assert sorted(summary(event) for event in recorded) == sorted(
        (Action.ADMIN_DELETED, "alert", str(alert.pk), alert.patient_id, "") for alert in alerts
    )
    assert all(event.actor == root for event in recorded)
    assert_no_value_in_trail(world.a.alert.message)


def test_deleting_a_repetition_in_the_admin_records_its_sessions_patient(
    world: World, admin_site_client: Client
) -> None:
    repetition = Repetition.objects.filter(session=world.a.completed_session).first()
    assert repetition is not None
    url = admin_url(Repetition, "delete", repetition.pk)
    assert admin_site_client.post(url, {"post": "yes"}).status_code == 302
    [event] = entries(Action.ADMIN_DELETED)
    expected = (Action.ADMIN_DELETED, "repetition", str(repetition.pk), world.p.pk, "")
    assert summary(event) == expected


# --- Changes outside the admin -------------------------------------------------------------------


def test_a_new_invitation_is_recorded_without_its_link(world: World) -> None:
    world.p.user.set_unusable_password()
    world.p.user.save()
    url = reverse("patient_reinvite", args=[world.p.pk])
    assert client_for(world, "therapist_a").post(url).status_code == 302
    [event] = entries(Action.PATIENT_REINVITED)
    assert summary(event) == (Action.PATIENT_REINVITED, "patient", str(world.p.pk), world.p.pk, "")
    assert event.actor == world.a.therapist.user and event.path == url
    [message] = mail.outbox
    link = re.search(r"https?://\S+/accounts/set-password/(\S+)/(\S+)/", str(message.body))
    assert link is not None
    uid, token = link.groups()
    assert_no_value_in_trail(link.group(), f"{uid}/{token}", token)


def test_no_invitation_and_no_entry_once_the_patient_has_a_password(world: World) -> None:
    url = reverse("patient_reinvite", args=[world.p.pk])
    assert client_for(world, "therapist_a").post(url).status_code == 302
    assert mail.outbox == [] and entries(Action.PATIENT_REINVITED) == []


def test_acknowledging_an_alert_is_recorded_once(world: World) -> None:
    alert = world.a.alert
    url = reverse("alert_acknowledge", args=[alert.pk])
    client = client_for(world, "therapist_a")
    assert client.post(url).status_code == 302
    assert client.post(url).status_code == 302  # again: changes nothing
    [event] = entries(Action.ALERT_ACKNOWLEDGED)
    assert summary(event) == (Action.ALERT_ACKNOWLEDGED, "alert", str(alert.pk), world.p.pk, "")
    assert event.actor == world.a.therapist.user and event.path == url


# --- Not recorded --------------------------------------------------------------------------------


def test_the_report_status_poll_is_not_recorded(world: World) -> None:
    client = client_for(world, "therapist_a")
    before = AuditEvent.objects.count()
    url = reverse("report_status", args=[world.a.report.pk])
    for _ in range(3):
        assert client.get(url).json()["done"] is True
    assert AuditEvent.objects.count() == before
