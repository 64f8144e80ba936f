"""Who sees the trail: the therapist the access history of their own patients, staff everything."""

import datetime
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from audit.selectors import EVENTS_PER_PAGE
from audit.services import audit_record
from tests.conftest import CAST, PASSWORD, World, client_for

Action = AuditEvent.Action


def history_url(world: World) -> str:
    return reverse("patient_access_history", args=[world.p.pk])


@pytest.fixture
def staff_client(db: None) -> Client:
    staff = get_user_model().objects.create_user(
        username="auditor@example.org", password=PASSWORD, is_staff=True
    )
    client = Client()
    client.force_login(staff)
    return client


# --- The therapist: their own patients' history --------------------------------------------------


def test_the_therapist_sees_who_opened_their_patients_record_and_who_was_refused(
    world: World,
) -> None:
    client_for(world, "patient_p").get(
        reverse("session_detail", args=[world.a.completed_session.pk])
    )
    client_for(world, "therapist_b").get(reverse("patient_detail", args=[world.p.pk]))
    client_for(world, "therapist_b").get(reverse("patient_detail", args=[world.q.pk]))
    page = client_for(world, "therapist_a").get(history_url(world)).content.decode()
    assert "Viewed a session" in page and world.p.user.username in page
    assert "Was refused access" in page and world.b.therapist.user.username in page
    # Q's record (B's patient) is not P's history.
    assert "Viewed the record and charts" not in page


def test_looking_at_the_history_is_itself_recorded_and_shown_first(world: World) -> None:
    response = client_for(world, "therapist_a").get(history_url(world))
    event = AuditEvent.objects.filter(action=Action.AUDIT_VIEWED).get()
    assert (event.actor, event.patient_id) == (world.a.therapist.user, world.p.pk)
    assert response.context["page"].object_list[0] == event


def test_another_therapist_gets_404_and_the_attempt_is_recorded(world: World) -> None:
    assert client_for(world, "therapist_b").get(history_url(world)).status_code == 404
    event = AuditEvent.objects.filter(action=Action.ACCESS_DENIED).get()
    assert (event.actor, event.patient_id) == (world.b.therapist.user, world.p.pk)
    assert not AuditEvent.objects.filter(action=Action.AUDIT_VIEWED).exists()


def test_entries_are_newest_first_with_local_time_and_utc(world: World, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    moment = datetime.datetime(2026, 7, 1, 10, 0, tzinfo=datetime.UTC)
    audit_record(action=Action.RECORD_VIEWED, obj=world.p)
    # An entry from the summer, inserted as it was then (inserting is all the table allows).
    backdated = AuditEvent(action=Action.RECORD_VIEWED, patient_id=world.p.pk, at=moment)
    backdated.save()
    response = client_for(world, "therapist_a").get(history_url(world))
    events = list(response.context["page"].object_list)
    assert events == sorted(events, key=lambda e: (e.at, e.id), reverse=True)
    assert events[-1] == backdated
    page = response.content.decode()
    assert "1 Jul 2026 12:00:00" in page  # Berlin, summer time
    assert "2026-07-01 10:00:00 UTC" in page


def test_the_history_is_paginated(world: World) -> None:
    for _ in range(EVENTS_PER_PAGE + 5):
        audit_record(action=Action.RECORD_VIEWED, obj=world.p)
    client = client_for(world, "therapist_a")
    first = client.get(history_url(world)).context["page"]
    assert len(first.object_list) == EVENTS_PER_PAGE and first.has_next()
    second = client.get(history_url(world), {"page": 2}).context["page"]
    assert len(second.object_list) >= 6 and not second.has_next()


def test_the_history_page_runs_a_fixed_number_of_queries(world: World) -> None:
    client = client_for(world, "therapist_a")
    client.get(history_url(world))  # warm: the session is loaded, content types cached
    with CaptureQueriesContext(connection) as few:
        client.get(history_url(world))
    for _ in range(30):
        audit_record(action=Action.SESSION_VIEWED, obj=world.a.completed_session)
    with CaptureQueriesContext(connection) as many:
        client.get(history_url(world))
    # Session, user, therapist, patient, the entry written, count, page.
    assert len(few) == len(many) == 7, [query["sql"] for query in many.captured_queries]


# --- Staff: everything ---------------------------------------------------------------------------


def test_staff_see_every_patients_entries(world: World, staff_client: Client) -> None:
    audit_record(action=Action.RECORD_VIEWED, obj=world.p)
    audit_record(action=Action.RECORD_VIEWED, obj=world.q)
    response = staff_client.get(reverse("audit_log"))
    assert response.status_code == 200
    patients = {event.patient_id for event in response.context["page"].object_list}
    assert {world.p.pk, world.q.pk} <= patients


def test_staff_filter_by_patient_and_action(world: World, staff_client: Client) -> None:
    audit_record(action=Action.RECORD_VIEWED, obj=world.p)
    audit_record(action=Action.CSV_EXPORTED, obj=world.p, sha256="0" * 64)
    audit_record(action=Action.CSV_EXPORTED, obj=world.q, sha256="1" * 64)
    response = staff_client.get(
        reverse("audit_log"), {"patient": str(world.p.pk), "action": Action.CSV_EXPORTED}
    )
    [event] = response.context["page"].object_list
    assert (event.patient_id, event.sha256) == (world.p.pk, "0" * 64)
    assert "0" * 64 in response.content.decode()
    viewed = AuditEvent.objects.filter(action=Action.AUDIT_VIEWED).get()
    assert viewed.patient_id == world.p.pk and "csv_exported" in viewed.detail


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"patient": "not-a-uuid"}, "Enter a valid UUID."),
        ({"action": "drop_table"}, "Select a valid choice."),
    ],
)
def test_a_bad_filter_is_refused_with_a_clear_message(
    staff_client: Client, query: dict[str, str], error: str
) -> None:
    response = staff_client.get(reverse("audit_log"), query)
    assert response.status_code == 400
    assert error in response.content.decode()


def test_the_staff_log_pages_keep_their_filters(world: World, staff_client: Client) -> None:
    for _ in range(EVENTS_PER_PAGE + 1):
        audit_record(action=Action.RECORD_VIEWED, obj=world.p)
    response = staff_client.get(reverse("audit_log"), {"patient": str(world.p.pk)})
    assert f"?patient={world.p.pk}&amp;page=2" in response.content.decode()


def test_a_patient_filter_shows_that_patients_entries_only(
    world: World, staff_client: Client
) -> None:
    audit_record(action=Action.RECORD_VIEWED, obj=world.p)
    unknown = uuid.uuid4()
    response = staff_client.get(reverse("audit_log"), {"patient": str(unknown)})
    # Only the staff member's own look, which is recorded against the patient it asked for.
    [event] = response.context["page"].object_list
    assert (event.action, event.patient_id) == (Action.AUDIT_VIEWED, unknown)


@pytest.mark.parametrize("actor", CAST)
def test_the_audit_log_is_for_staff_only(world: World, actor: str) -> None:
    response = client_for(world, actor).get(reverse("audit_log"))
    if actor == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == 404
        assert AuditEvent.objects.filter(action=Action.ACCESS_DENIED, path="/audit/").exists()
