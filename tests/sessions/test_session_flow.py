"""The patient's day: today's plan, a session started, completed and reported on."""

import datetime
from dataclasses import replace

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.urls import reverse
from django.utils import timezone

from patients.models import Exercise
from sessions.models import ExerciseSession, PainReport, Repetition
from sessions.selectors import live_plan, today_plan
from sessions.services import rep_record, session_start
from tests.conftest import World, client_for, rep_data


def test_today_shows_the_plan_with_this_weeks_progress(world: World) -> None:
    plan = today_plan(patient=world.p, today=timezone.localdate())
    assert [item.prescription.exercise.slug for item in plan] == ["heel_slide", "wall_squat_a"]
    heel_slide, wall_squat = plan
    assert heel_slide.done_this_week == 1 and heel_slide.done_today and not heel_slide.week_complete
    assert wall_squat.done_this_week == 0 and wall_squat.open_session == world.a.open_session
    page = client_for(world, "patient_p").get(reverse("today")).content.decode()
    assert "Heel slide" in page and "2 sets × 3 reps" in page and "1 of 3" in page
    assert "Continue" in page


def test_no_plan_outside_the_assignment_dates(world: World) -> None:
    later = timezone.localdate() + datetime.timedelta(days=30)
    assert today_plan(patient=world.p, today=later) == []


def test_a_patient_starts_completes_and_reports_a_session(world: World) -> None:
    client = client_for(world, "patient_p")
    line = world.a.protocol.prescriptions.order_by("position")[0]
    response = client.post(reverse("session_start", args=[line.pk]))
    session = ExerciseSession.objects.filter(patient=world.p, prescription=line).latest(
        "started_at"
    )
    assert response["Location"] == reverse("session_live", args=[session.pk])
    assert session.is_open and session.target_sets == 2 and session.target_rom_deg == 90
    assert "Start camera" in client.get(response["Location"]).content.decode()
    detail = client.get(reverse("session_detail", args=[session.pk])).content.decode()
    assert "I have finished this session" in detail  # without a camera

    response = client.post(reverse("session_complete", args=[session.pk]))
    assert response["Location"] == reverse("session_report", args=[session.pk])
    response = client.post(
        response["Location"], {"pain_nrs": "4", "effort_borg": "0.5", "comment": "ok"}
    )
    assert response.status_code == 302
    report = PainReport.objects.get(session=session)
    assert (report.pain_nrs, report.effort_borg, report.patient) == (4, 0.5, world.p)


def test_starting_twice_resumes_the_open_session(world: World) -> None:
    second = world.a.protocol.prescriptions.order_by("position")[1]
    again = session_start(patient=world.p, prescription=second)
    assert again == world.a.open_session


def test_a_patient_cannot_start_an_exercise_that_is_not_on_their_plan(world: World) -> None:
    foreign = world.b.protocol.prescriptions.all()[0]
    with pytest.raises(ValidationError):
        session_start(patient=world.p, prescription=foreign)


@pytest.mark.parametrize(
    "data",
    [
        {"pain_nrs": "11", "effort_borg": "3.0"},
        {"pain_nrs": "-1", "effort_borg": "3.0"},
        {"pain_nrs": "3", "effort_borg": "2.5"},
        {"pain_nrs": "three", "effort_borg": "3.0"},
        {"effort_borg": "3.0"},
    ],
)
def test_it_rejects_pain_and_effort_outside_their_scales(
    world: World, data: dict[str, str]
) -> None:
    session = world.a.completed_session
    response = client_for(world, "patient_p").post(
        reverse("session_report", args=[session.pk]), data
    )
    assert response.status_code == 200
    report = PainReport.objects.get(session=session)
    assert (report.pain_nrs, report.effort_borg) == (3, 4.0)


def test_reporting_again_corrects_the_report(world: World) -> None:
    session = world.a.completed_session
    client_for(world, "patient_p").post(
        reverse("session_report", args=[session.pk]), {"pain_nrs": "2", "effort_borg": "3.0"}
    )
    assert PainReport.objects.filter(session=session).count() == 1
    assert PainReport.objects.get(session=session).pain_nrs == 2


def test_an_open_session_cannot_be_reported_on_yet(world: World) -> None:
    session = world.a.open_session
    response = client_for(world, "patient_p").post(
        reverse("session_report", args=[session.pk]), {"pain_nrs": "2", "effort_borg": "3.0"}
    )
    assert response["Location"] == reverse("session_detail", args=[session.pk])
    assert not PainReport.objects.filter(session=session).exists()


def test_completing_summarises_the_repetitions_and_is_idempotent(world: World) -> None:
    session = world.a.completed_session
    assert (session.reps_counted, session.best_rom_deg, session.mean_rom_deg) == (3, 82.0, 81.5)
    client_for(world, "patient_p").post(reverse("session_complete", args=[session.pk]))
    session.refresh_from_db()
    assert session.reps_counted == 3 and not session.self_reported


def test_a_repetition_is_recorded_once_however_often_it_arrives(world: World) -> None:
    session = world.a.open_session
    first = rep_record(session=session, data=rep_data(set_number=1, index=1, rom=70.0))
    again = rep_record(session=session, data=rep_data(set_number=1, index=1, rom=70.0))
    assert first.pk == again.pk
    assert Repetition.objects.filter(session=session).count() == 1


def test_the_database_refuses_a_second_row_for_the_same_repetition(world: World) -> None:
    session = world.a.completed_session
    with pytest.raises(IntegrityError):
        Repetition.objects.create(
            session=session,
            set_number=1,
            index=1,
            side="right",
            start_s=0,
            end_s=1,
            min_deg=0,
            max_deg=1,
            rom_deg=1,
            duration_s=1,
            peak_velocity_dps=1,
        )


def test_the_therapist_sees_the_sessions_and_repetitions(world: World) -> None:
    client = client_for(world, "therapist_a")
    patient_page = client.get(reverse("patient_detail", args=[world.p.pk])).content.decode()
    assert "Heel slide" in patient_page and "82°" in patient_page and "3/10" in patient_page
    session_page = client.get(
        reverse("session_detail", args=[world.a.completed_session.pk])
    ).content.decode()
    assert "trunk lean" in session_page and "81°" in session_page and "95°/s" in session_page
    assert "I have finished" not in session_page


def test_the_patient_sees_their_own_history_only(world: World) -> None:
    page = client_for(world, "patient_p").get(reverse("history")).content.decode()
    assert reverse("session_detail", args=[world.a.completed_session.pk]) in page
    assert reverse("session_detail", args=[world.b.completed_session.pk]) not in page


def test_the_best_peak_follows_the_direction_of_the_exercise(world: World) -> None:
    extension = ExerciseSession(
        exercise=Exercise.objects.get(slug="seated_knee_extension", owner=None)
    )
    reps = [rep_data(set_number=1, index=i, rom=rom) for i, rom in ((1, 80.0), (2, 84.0))]
    reps[0] = replace(reps[0], min_deg=7.0, max_deg=87.0)
    reps[1] = replace(reps[1], min_deg=3.0, max_deg=87.0)
    extension.summarise(reps)
    # Knee extension from sitting moves the angle down: the best peak is the smallest angle.
    assert (extension.best_peak_deg, extension.best_rom_deg, extension.mean_rom_deg) == (
        3.0,
        84.0,
        82.0,
    )
    squat = ExerciseSession(exercise=Exercise.objects.get(slug="squat", owner=None))
    squat.summarise(reps)
    assert squat.best_peak_deg == 87.0
    squat.summarise([])
    assert (squat.reps_counted, squat.best_peak_deg) == (0, None)


def test_the_patients_sessions_are_paged(world: World) -> None:
    page = client_for(world, "therapist_a").get(
        reverse("patient_detail", args=[world.p.pk]) + "?page=99"
    )
    assert page.status_code == 200  # an out-of-range page shows the last one


def _finished_before(done: ExerciseSession, *, days: int, mean_rom: float, side: str) -> None:
    ExerciseSession.objects.create(
        patient=done.patient,
        prescription=done.prescription,
        exercise=done.exercise,
        side=side,
        status=ExerciseSession.Status.COMPLETED,
        started_at=done.started_at - datetime.timedelta(days=days),
        target_sets=1,
        target_reps=3,
        target_rom_deg=90,
        reps_counted=3,
        mean_rom_deg=mean_rom,
    )


def test_the_live_plan_expects_the_patients_own_recent_range_on_that_side(world: World) -> None:
    done = world.a.completed_session  # mean ROM 81.5
    for days, mean_rom in ((9, 20.0), (7, 30.0), (5, 40.0)):
        _finished_before(done, days=days, mean_rom=mean_rom, side=done.side)
    _finished_before(done, days=1, mean_rom=10.0, side="left" if done.side != "left" else "right")
    today = replace_session(done, status=ExerciseSession.Status.IN_PROGRESS)
    plan = live_plan(session=today)
    # The last three completed on this side: 81.5, 40 and 30 (the 20 is older).
    assert plan.expected_rom_deg == 40.0 and plan.side == done.side
    both = replace_session(done, side="both", status=ExerciseSession.Status.IN_PROGRESS)
    assert live_plan(session=both).side == "both"  # both limbs are measured
    assert live_plan(session=both).expected_rom_deg is None  # no history for "both" yet


def replace_session(done: ExerciseSession, **changes: object) -> ExerciseSession:
    columns = ExerciseSession._meta.concrete_fields
    fields = {f.name: getattr(done, f.name) for f in columns if f.name != "id"}
    fields.update(started_at=timezone.now(), mean_rom_deg=None, reps_counted=0, **changes)
    return ExerciseSession.objects.create(**fields)
