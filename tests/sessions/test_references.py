"""The therapist's reference movement in use: the counter's target and first guess come from it,
and every repetition is scored against it. Real joint traces (tests/fixtures/joint_traces)."""

import datetime
import json
from dataclasses import replace

import numpy as np
import pytest
from django.utils import timezone

from analysis.charts import progress_figures
from analysis.counting import TRACE_HZ
from analysis.progress import Progress
from analysis.repetitions import RepetitionMetrics
from analysis.similarity import ReferenceTemplate, thresholds_from_reference
from sessions.models import ExerciseSession, ReferenceMovement
from sessions.references import demonstration_of, reference_in_use
from sessions.selectors import live_plan, progress_of_patient, today_plan
from sessions.services import rep_record, session_complete, session_start
from tests.analysis.test_similarity import clip, half_range
from tests.conftest import World

SQUATS = "Vaidansh__squatsz"


def _store(session: ExerciseSession, template: ReferenceTemplate) -> ReferenceMovement:
    target_deg, rom_deg = thresholds_from_reference(template)
    return ReferenceMovement.objects.create(
        patient=session.patient,
        exercise=session.exercise,
        side=template.side if template.side != "both" else "right",
        template=json.loads(template.to_json()),
        repetitions=template.count,
        target_deg=target_deg,
        expected_rom_deg=rom_deg,
    )


def _as_recorded(
    rep: RepetitionMetrics, traces: dict[str, np.ndarray], index: int
) -> RepetitionMetrics:
    """A repetition as the counter hands it over: its joint traces at TRACE_HZ."""
    t = np.linspace(rep.start_s, rep.end_s, len(next(iter(traces.values()))))
    ticks = np.arange(rep.start_s, rep.end_s + 1e-9, 1 / TRACE_HZ)
    return replace(
        rep,
        set_number=1,
        index=index,
        joint_traces_deg={
            name: np.round(np.interp(ticks, t, values), 1).tolist()
            for name, values in traces.items()
            if np.isfinite(values).all()
        },
    )


def test_each_repetition_is_scored_against_the_reference_in_use(world: World) -> None:
    session = world.a.open_session  # a squat
    squats = clip(SQUATS)
    held_out = squats.repetition(0)
    full = _as_recorded(squats.reps[0], held_out, index=1)
    half = _as_recorded(squats.reps[0], half_range(held_out), index=2)

    unscored = rep_record(session=session, data=full)
    assert unscored.similarity is None and unscored.deviating_joints == []

    _store(session, squats.template(leave_out=0))
    scored = rep_record(session=session, data=replace(full, index=3))
    halved = rep_record(session=session, data=half)
    assert scored.similarity is not None and scored.similarity >= 80
    assert halved.similarity is not None and halved.similarity < scored.similarity
    assert any("knee" in joint or "hip" in joint for joint in halved.deviating_joints)
    scored.refresh_from_db()
    assert scored.similarity >= 80  # stored, not just computed


def test_the_newest_reference_sets_the_target_and_the_first_guess_of_the_range(
    world: World,
) -> None:
    session = world.a.open_session
    prescription = session.prescription
    assert prescription is not None
    session.status = ExerciseSession.Status.ABANDONED
    session.save()
    squats = clip(SQUATS)
    _store(session, squats.template(leave_out=0))
    newest = _store(session, squats.template(leave_out=1))
    assert (
        reference_in_use(patient_id=session.patient_id, exercise_id=session.exercise_id) == newest
    )

    plan = {
        item.prescription: item for item in today_plan(patient=world.p, today=timezone.localdate())
    }
    assert plan[prescription].target_deg == pytest.approx(newest.target_deg)  # Today says so too
    started = session_start(patient=session.patient, prescription=prescription)
    assert started.target_rom_deg == pytest.approx(newest.target_deg)
    assert started.target_rom_deg != prescription.target_rom_deg
    assert live_plan(session=started).expected_rom_deg == pytest.approx(newest.expected_rom_deg)


def test_the_demonstration_plays_the_landmarks_kept_never_video(world: World) -> None:
    session = world.a.open_session
    assert demonstration_of(None) is None
    without_skeleton = _store(session, clip(SQUATS).template())
    assert demonstration_of(without_skeleton) is None  # made from angles alone
    frames = [[0.5, 0.1] * 33, [0.5, 0.2] * 33]
    without_skeleton.template["demonstration"] = {"fps": 15.0, "frames": frames}
    assert demonstration_of(without_skeleton) == {"fps": 15.0, "frames": frames}


def test_the_patients_progress_charts_the_mean_similarity_of_scored_sessions(world: World) -> None:
    session = world.a.open_session
    squats = clip(SQUATS)
    figure_ids = [name for name, _ in progress_figures(_progress(world))]
    assert "similarity" not in figure_ids  # nothing scored yet

    _store(session, squats.template(leave_out=0))
    held_out = squats.repetition(0)
    rep_record(session=session, data=_as_recorded(squats.reps[0], held_out, index=1))
    rep_record(session=session, data=_as_recorded(squats.reps[0], half_range(held_out), index=2))
    session_complete(session=session)
    scores = [s for s in session.repetitions.values_list("similarity", flat=True) if s is not None]

    progress = _progress(world)
    points = [
        p for series in progress.rom for p in series.points if p.session_id == str(session.pk)
    ]
    assert [p.similarity for p in points] == [pytest.approx(sum(scores) / 2, abs=0.1)]
    figures = dict(progress_figures(progress))
    assert list(figures["similarity"].data[0].y) == [points[0].similarity]


def _progress(world: World) -> Progress:
    today = timezone.localdate()
    return progress_of_patient(
        patient=world.p, first=today - datetime.timedelta(days=7), last=today
    )
