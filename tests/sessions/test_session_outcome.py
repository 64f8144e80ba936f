"""A session's outcome follows what was measured, and one rule decides what counts towards the
plan: the model's property and the queryset every reader uses agree."""

import itertools
from dataclasses import replace

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions.models import ExerciseSession
from sessions.protocol import summary
from sessions.selectors import (
    live_plan,
    live_resume_point,
    repetition_metrics_of_session,
    today_plan,
)
from sessions.services import rep_record, session_complete, session_start
from tests.conftest import World, client_for, rep_data


def ended(
    world: World, *, reps: int, sets: int = 2, per_set: int = 3, **fields: object
) -> ExerciseSession:
    session = world.a.open_session
    session.pk = None  # a copy of the open session, ended with these numbers
    for name, value in {
        "status": ExerciseSession.Status.COMPLETED,
        "ended_at": timezone.now(),
        "reps_counted": reps,
        "target_sets": sets,
        "target_reps": per_set,
        **fields,
    }.items():
        setattr(session, name, value)
    session.save()
    return session


@pytest.mark.parametrize(
    ("reps", "self_reported", "outcome", "counts"),
    [
        (0, False, ExerciseSession.Outcome.NOT_MEASURED, False),
        (2, False, ExerciseSession.Outcome.PARTLY_DONE, False),  # 2 of 6: under half
        (3, False, ExerciseSession.Outcome.PARTLY_DONE, True),
        (6, False, ExerciseSession.Outcome.DONE, True),
        (7, False, ExerciseSession.Outcome.DONE, True),
        (0, True, ExerciseSession.Outcome.REPORTED, True),  # no camera, on the patient's word
        (1, True, ExerciseSession.Outcome.PARTLY_DONE, False),  # the camera measured some
    ],
)
def test_the_outcome_follows_the_counted_repetitions(
    world: World, reps: int, self_reported: bool, outcome: str, counts: bool
) -> None:
    session = ended(world, reps=reps, self_reported=self_reported)
    assert session.outcome == outcome
    assert session.counts_towards_plan is counts
    assert ExerciseSession.objects.work_done().filter(pk=session.pk).exists() is counts


def test_the_queryset_and_the_property_agree_on_every_prescription(world: World) -> None:
    grid = itertools.product(range(0, 8), (1, 2, 3), (1, 3, 5), (False, True))
    sessions = [
        ended(world, reps=reps, sets=sets, per_set=per_set, self_reported=reported)
        for reps, sets, per_set, reported in grid
    ]
    in_sql = set(ExerciseSession.objects.work_done().values_list("pk", flat=True))
    assert {s.pk for s in sessions if s.counts_towards_plan} == in_sql & {s.pk for s in sessions}


def test_an_open_or_abandoned_session_does_not_count(world: World) -> None:
    assert world.a.open_session.outcome is None
    assert not world.a.open_session.counts_towards_plan
    abandoned = ended(world, reps=6, status=ExerciseSession.Status.ABANDONED)
    assert not abandoned.counts_towards_plan
    assert not ExerciseSession.objects.work_done().filter(pk=abandoned.pk).exists()


def test_nothing_measured_is_not_praised(world: World) -> None:
    message = summary(ended(world, reps=0), [])
    assert message["outcome"] == "not_measured" and not message["counts_towards_plan"]
    assert message["headline"] == "No repetitions were measured"
    assert "does not count towards your plan" in message["outcome_text"]
    partly = summary(ended(world, reps=2), [])
    assert partly["headline"] == "Session finished — partly done"
    assert partly["outcome_text"] == (
        "2 of 6 repetitions were counted. A session counts towards your plan from 3 repetitions."
    )
    assert summary(ended(world, reps=6), [])["headline"].startswith("Well done")


def test_a_session_done_without_the_camera_counts_on_the_patients_word(world: World) -> None:
    client = client_for(world, "patient_p")
    session = world.a.open_session
    line = session.prescription

    def done_this_week() -> int:
        plan = today_plan(patient=world.p, today=timezone.localdate())
        return next(item.done_this_week for item in plan if item.prescription == line)

    before = done_this_week()
    client.post(reverse("session_complete", args=[session.pk]))
    session.refresh_from_db()
    assert session.self_reported and session.outcome == ExerciseSession.Outcome.REPORTED
    assert done_this_week() == before + 1
    page = client.get(reverse("session_detail", args=[session.pk])).content.decode()
    assert "done, not measured" in page


def test_the_session_list_says_what_was_measured(world: World) -> None:
    ended(world, reps=0)
    page = client_for(world, "patient_p").get(reverse("history")).content.decode()
    assert "nothing measured" in page and "partly done" in page


def test_both_sides_of_a_one_side_exercise_are_prescribed_measured_and_summarised_apart(
    world: World,
) -> None:
    line = world.a.protocol.prescriptions.order_by("position")[0]  # heel slide, 2 x 3
    line.side = "both"
    line.save()
    session = session_start(patient=world.p, prescription=line)
    assert session.sides_in_turn == 2 and session.reps_per_set == 6
    assert (session.prescribed_reps, session.reps_needed_for_plan) == (12, 6)
    assert live_plan(session=session).turns == ("left", "right")
    for index in range(1, 7):  # set 1: three on the left, then three on the right
        side, rom = ("left", 60.0) if index <= 3 else ("right", 80.0)
        rep_record(
            session=session,
            data=replace(rep_data(set_number=1, index=index, rom=rom), side=side),
        )
    assert live_resume_point(session=session) == (2, 0)
    session = session_complete(session=session)
    assert session.outcome == ExerciseSession.Outcome.PARTLY_DONE and session.counts_towards_plan
    message = summary(session, repetition_metrics_of_session(session=session))
    assert message["target_reps"] == 6
    assert message["sides"] == [
        {"side": "left", "reps": 3, "target": 6, "mean_rom": 60.0, "best_peak": 65.0},
        {"side": "right", "reps": 3, "target": 6, "mean_rom": 80.0, "best_peak": 85.0},
    ]
    assert message["symmetry"] == 75.0
    page = client_for(world, "patient_p").get(reverse("session_detail", args=[session.pk]))
    text = page.content.decode()
    assert "6 of 12 (2 × 3 on each side)" in text and "Symmetry" in text and "75%" in text
