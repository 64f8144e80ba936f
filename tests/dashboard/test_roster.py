"""The roster: adherence over 7 and 28 days, last session, open alerts, in a fixed query count."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboard.selectors import roster_for_therapist
from patients.models import Assignment, Prescription
from patients.selectors import adherence_ratio, expected_sessions
from sessions.models import ExerciseSession
from tests.conftest import World, client_for, make_practice


def test_adherence_caps_each_exercise_at_what_was_prescribed() -> None:
    # One exercise over-done (10 of 3) cannot hide another skipped (0 of 3).
    assert adherence_ratio([(3.0, 10), (3.0, 0)]) == 0.5
    assert adherence_ratio([(3.0, 2), (1.0, 1)]) == 0.75
    assert adherence_ratio([]) is None


def test_expected_sessions_are_pro_rata_over_the_assignment_days() -> None:
    line = Prescription(sessions_per_week=3)
    day = datetime.date(2026, 11, 21)
    whole = Assignment(start_date=day - datetime.timedelta(days=100), end_date=day)
    assert (
        expected_sessions(
            prescription=line, assignment=whole, first=day - datetime.timedelta(days=27), last=day
        )
        == 12
    )
    started_a_week_ago = Assignment(start_date=day - datetime.timedelta(days=6), end_date=day)
    assert (
        expected_sessions(
            prescription=line,
            assignment=started_a_week_ago,
            first=day - datetime.timedelta(days=27),
            last=day,
        )
        == 3
    )
    ended = Assignment(
        start_date=day - datetime.timedelta(days=60), end_date=day - datetime.timedelta(days=30)
    )
    assert (
        expected_sessions(
            prescription=line, assignment=ended, first=day - datetime.timedelta(days=27), last=day
        )
        == 0
    )


def test_the_roster_reports_the_patients_numbers(world: World) -> None:
    [row] = roster_for_therapist(therapist=world.a.therapist, today=timezone.localdate())
    # P: two lines at 3/week, assigned 14 days ago; one session of one line done today.
    assert row.patient == world.p
    assert row.adherence_7d == pytest.approx(1 / 6)
    assert row.adherence_28d == pytest.approx(1 / (2 * 3 * 15 / 7))
    assert row.last_session_at == world.a.completed_session.started_at
    assert row.open_alerts == 1
    assert row.protocols == ["Knee a"]


def test_a_session_in_progress_does_not_count_as_done(world: World) -> None:
    ExerciseSession.objects.filter(pk=world.a.completed_session.pk).update(status="abandoned")
    [row] = roster_for_therapist(therapist=world.a.therapist, today=timezone.localdate())
    assert row.adherence_7d == 0 and row.last_session_at is None


def test_it_hides_other_therapists_patients(world: World) -> None:
    page = client_for(world, "therapist_a").get(reverse("roster")).content.decode()
    assert world.p.full_name in page
    assert world.q.full_name not in page


def test_the_roster_query_count_does_not_grow_with_patients(world: World) -> None:
    client = client_for(world, "therapist_a")
    with CaptureQueriesContext(connection) as one_patient:
        assert client.get(reverse("roster")).status_code == 200
    for prefix in ("c", "d", "e"):
        extra = make_practice(prefix)
        extra.patient.therapist = world.a.therapist
        extra.patient.save()
    with CaptureQueriesContext(connection) as four_patients:
        page = client.get(reverse("roster")).content.decode()
    assert "Pat C" in page and "Pat E" in page
    assert len(four_patients.captured_queries) == len(one_patient.captured_queries)
    assert len(one_patient.captured_queries) <= 10
