"""Every audited action, through the real views: who, what, which patient, where from, and the
SHA-256 of every file that leaves."""

import datetime
import hashlib
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record, client_ip
from patients.models import Exercise, Patient, Protocol
from tests.conftest import PASSWORD, World, client_for

Action = AuditEvent.Action


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("at", "id")


def assert_event(event: AuditEvent, *, actor: Any, patient: Patient | None, path: str) -> None:
    assert event.actor == actor
    assert event.actor_label == actor.username
    assert event.patient_id == (patient.pk if patient else None)
    assert event.path == path
    assert event.ip == "127.0.0.1"
    assert timezone.now() - event.at < datetime.timedelta(minutes=1)


# --- Reads ---------------------------------------------------------------------------------------


def test_opening_a_patients_record_and_charts_is_recorded(world: World) -> None:
    url = reverse("patient_detail", args=[world.p.pk]) + "?days=30"
    assert client_for(world, "therapist_a").get(url).status_code == 200
    event = last_event(Action.RECORD_VIEWED)
    assert_event(event, actor=world.a.therapist.user, patient=world.p, path=url)
    assert (event.object_type, event.object_id) == ("patient", str(world.p.pk))


def test_a_patient_looking_at_their_own_history_is_recorded(world: World) -> None:
    assert client_for(world, "patient_p").get(reverse("history")).status_code == 200
    event = last_event(Action.RECORD_VIEWED)
    assert_event(event, actor=world.p.user, patient=world.p, path=reverse("history"))
    assert event.detail == "own history"


@pytest.mark.parametrize("actor", ["therapist_a", "patient_p"])
def test_opening_a_session_is_recorded(world: World, actor: str) -> None:
    session = world.a.completed_session
    url = reverse("session_detail", args=[session.pk])
    client = client_for(world, actor)
    assert client.get(url).status_code == 200
    event = last_event(Action.SESSION_VIEWED)
    user = world.a.therapist.user if actor == "therapist_a" else world.p.user
    assert_event(event, actor=user, patient=world.p, path=url)
    assert (event.object_type, event.object_id) == ("session", str(session.pk))


def test_opening_a_report_is_recorded(world: World) -> None:
    url = reverse("report_detail", args=[world.a.report.pk])
    assert client_for(world, "therapist_a").get(url).status_code == 200
    event = last_event(Action.REPORT_VIEWED)
    assert_event(event, actor=world.a.therapist.user, patient=world.p, path=url)
    assert (event.object_type, event.object_id) == ("report", str(world.a.report.pk))


# --- Files leaving, with their hash --------------------------------------------------------------


def test_a_report_download_records_the_sha256_of_the_pdf_sent(world: World) -> None:
    url = reverse("report_download", args=[world.a.report.pk])
    response = client_for(world, "patient_p").get(url)
    assert response.status_code == 200
    event = last_event(Action.REPORT_DOWNLOADED)
    assert_event(event, actor=world.p.user, patient=world.p, path=url)
    assert event.sha256 == hashlib.sha256(response.content).hexdigest()
    assert event.sha256 == world.a.report.pdf_sha256


@pytest.mark.parametrize(
    ("name", "action"), [("export_csv", Action.CSV_EXPORTED), ("export_fhir", Action.FHIR_EXPORTED)]
)
def test_an_export_records_the_sha256_of_the_exact_bytes_sent(
    world: World, name: str, action: str
) -> None:
    today = timezone.localdate()
    first_day, last_day = (today - datetime.timedelta(days=6)).isoformat(), today.isoformat()
    url = reverse(name, args=[world.p.pk])
    response = client_for(world, "therapist_a").get(
        url, {"first_day": first_day, "last_day": last_day}
    )
    assert response.status_code == 200
    body = b"".join(response) if response.streaming else response.content
    assert len(body) > 200  # the session of the fixture is in it, not only a header
    event = last_event(action)
    assert event.sha256 == hashlib.sha256(body).hexdigest()
    assert event.detail == f"period {first_day} to {last_day}"
    assert (event.object_type, event.object_id) == ("patient", str(world.p.pk))
    assert event.actor == world.a.therapist.user and event.patient_id == world.p.pk


# --- Changes -------------------------------------------------------------------------------------

NEW_PATIENT = {
    "first_name": "Nina",
    "last_name": "New",
    "email": "nina.new@example.org",
    "condition": "ACL reconstruction",
    "affected_side": "left",
}


def test_adding_a_patient_is_recorded(world: World) -> None:
    response = client_for(world, "therapist_a").post(reverse("patient_new"), NEW_PATIENT)
    assert response.status_code == 302
    patient = Patient.objects.get(user__email="nina.new@example.org")
    event = last_event(Action.PATIENT_CREATED)
    assert_event(event, actor=world.a.therapist.user, patient=patient, path=reverse("patient_new"))


def test_changing_a_patient_records_the_changed_fields_but_not_their_values(world: World) -> None:
    url = reverse("patient_edit", args=[world.p.pk])
    data = {
        "first_name": "Pat",
        "last_name": "A",
        "email": world.p.user.email,
        "condition": "Revision arthroplasty",
        "affected_side": "left",
    }
    assert client_for(world, "therapist_a").post(url, data).status_code == 302
    event = last_event(Action.PATIENT_CHANGED)
    assert_event(event, actor=world.a.therapist.user, patient=world.p, path=url)
    assert event.detail == "fields: condition, affected_side"
    assert "Revision" not in event.detail


def _protocol_post(name: str, exercise: Exercise, **extra: Any) -> dict[str, Any]:
    line = {
        "exercise": exercise.pk,
        "side": "right",
        "sets": 3,
        "reps": 10,
        "hold_s": 0,
        "rest_s": 30,
        "target_rom_deg": "",
        "sessions_per_week": 3,
        "notes": "",
    }
    data: dict[str, Any] = {
        "name": name,
        "notes": "",
        "lines-TOTAL_FORMS": 1,
        "lines-INITIAL_FORMS": 0,
        "lines-MIN_NUM_FORMS": 1,
        "lines-MAX_NUM_FORMS": 1000,
        **{f"lines-0-{key}": value for key, value in line.items()},
    }
    return {**data, **extra}


def test_creating_and_changing_a_protocol_is_recorded(world: World) -> None:
    client = client_for(world, "therapist_a")
    squat = Exercise.objects.get(slug="squat", owner=None)
    assert client.post(reverse("protocol_new"), _protocol_post("Hip", squat)).status_code == 302
    protocol = Protocol.objects.get(name="Hip")
    created = last_event(Action.PROTOCOL_CREATED)
    assert (created.object_type, created.object_id) == ("protocol", str(protocol.pk))
    assert created.actor == world.a.therapist.user and created.patient_id is None

    line = protocol.prescriptions.get()
    edit = _protocol_post(
        "Hip, week 2", squat, **{"lines-INITIAL_FORMS": 1, "lines-0-id": str(line.pk)}
    )
    url = reverse("protocol_edit", args=[protocol.pk])
    assert client.post(url, edit).status_code == 302
    changed = last_event(Action.PROTOCOL_CHANGED)
    assert (changed.object_id, changed.path) == (str(protocol.pk), url)


def test_assigning_and_changing_an_assignment_is_recorded(world: World) -> None:
    client = client_for(world, "therapist_a")
    today = timezone.localdate()
    start = today + datetime.timedelta(days=20)
    data = {
        "protocol": world.a.protocol.pk,
        "start_date": start,
        "end_date": today + datetime.timedelta(days=40),
    }
    assert client.post(reverse("assignment_new", args=[world.p.pk]), data).status_code == 302
    created = last_event(Action.ASSIGNMENT_CREATED)
    assignment = world.p.assignments.get(start_date=start)
    assert (created.object_type, created.object_id) == ("assignment", str(assignment.pk))
    assert created.patient_id == world.p.pk

    data["end_date"] = today + datetime.timedelta(days=50)
    url = reverse("assignment_edit", args=[assignment.pk])
    assert client.post(url, data).status_code == 302
    changed = last_event(Action.ASSIGNMENT_CHANGED)
    assert_event(changed, actor=world.a.therapist.user, patient=world.p, path=url)


# --- Refused access ------------------------------------------------------------------------------


def test_another_therapist_asking_for_a_patients_page_is_recorded_as_refused(world: World) -> None:
    url = reverse("patient_detail", args=[world.p.pk])
    assert client_for(world, "therapist_b").get(url).status_code == 404
    event = last_event(Action.ACCESS_DENIED)
    assert_event(event, actor=world.b.therapist.user, patient=world.p, path=url)
    assert (event.object_type, event.object_id) == ("patient", str(world.p.pk))
    assert not AuditEvent.objects.filter(action=Action.RECORD_VIEWED).exists()


def test_a_refused_object_without_a_patient_in_its_url_keeps_its_id(world: World) -> None:
    url = reverse("session_detail", args=[world.a.completed_session.pk])
    assert client_for(world, "patient_q").get(url).status_code == 404
    event = last_event(Action.ACCESS_DENIED)
    assert (event.object_type, event.object_id) == ("session", str(world.a.completed_session.pk))
    assert event.patient_id is None and event.actor == world.q.user


def test_an_anonymous_visitor_is_sent_to_login_and_not_recorded(world: World) -> None:
    response = Client().get(reverse("patient_detail", args=[world.p.pk]))
    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action=Action.ACCESS_DENIED).exists()


# --- Accounts ------------------------------------------------------------------------------------


def test_signing_in_and_out_is_recorded(world: World) -> None:
    client = Client()
    credentials = {"username": "therapist.a@example.org", "password": PASSWORD}
    assert client.post(reverse("login"), credentials).status_code == 302
    user = world.a.therapist.user
    assert_event(last_event(Action.LOGIN), actor=user, patient=None, path=reverse("login"))
    assert client.post(reverse("logout")).status_code == 302
    assert_event(last_event(Action.LOGOUT), actor=user, patient=None, path=reverse("logout"))


def test_a_failed_sign_in_records_the_name_typed_but_never_the_password(world: World) -> None:
    credentials = {"username": "therapist.a@example.org", "password": "wrong guess 123"}
    assert Client().post(reverse("login"), credentials).status_code == 200
    event = last_event(Action.LOGIN_FAILED)
    assert event.actor is None and event.actor_label == ""
    assert event.detail == "username: therapist.a@example.org"
    assert event.ip == "127.0.0.1"
    row = AuditEvent.objects.filter(pk=event.pk).values().get()
    assert not any("wrong guess" in str(value) for value in row.values())


def test_a_forged_log_line_in_a_username_is_escaped(world: World) -> None:
    forged = "eve\n2026-01-01 admin login\u2028\x1b[2K done"
    Client().post(reverse("login"), {"username": forged, "password": "x"})
    event = last_event(Action.LOGIN_FAILED)
    # EmailLoginForm lower-cases and strips; the control characters stay, escaped.
    assert event.detail == "username: eve\\n2026-01-01 admin login\\u2028\\x1b[2k done"
    assert "\n" not in event.detail and "\x1b" not in event.detail


def test_a_deleted_users_entries_stay_readable(world: World) -> None:
    user = get_user_model().objects.create_user(username="temp@example.org", password=PASSWORD)
    event = audit_record(action=Action.LOGIN, user=user)
    user.delete()
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor is None and event.actor_label == "temp@example.org"


# --- Client address ------------------------------------------------------------------------------


def test_the_client_ip_ignores_x_forwarded_for_without_a_trusted_proxy(
    world: World, settings: Any
) -> None:
    settings.TRUSTED_PROXY_COUNT = 0
    client = client_for(world, "therapist_a")
    client.get(reverse("patient_detail", args=[world.p.pk]), HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert last_event(Action.RECORD_VIEWED).ip == "127.0.0.1"


def test_behind_the_trusted_proxy_the_client_ip_is_the_address_it_appended(
    world: World, settings: Any
) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    client = client_for(world, "therapist_a")
    forwarded = "198.51.100.66, 203.0.113.9"  # the first one was typed by the client
    client.get(reverse("patient_detail", args=[world.p.pk]), HTTP_X_FORWARDED_FOR=forwarded)
    assert last_event(Action.RECORD_VIEWED).ip == "203.0.113.9"


def test_an_address_that_is_not_an_ip_is_left_empty(rf: Any) -> None:
    request = rf.get("/", REMOTE_ADDR="unix:/run/daphne.sock")
    assert client_ip(request) is None


def test_a_malformed_sha256_is_refused(db: None) -> None:
    with pytest.raises(ValueError, match="64 lower-case hex digits"):
        audit_record(action=Action.CSV_EXPORTED, sha256="ABC")
