"""The live tracker on a synthetic side-view skeleton driven by a real motion-capture knee angle."""

import math

import numpy as np
import pytest

from analysis.exercises import BY_SLUG
from analysis.landmarks import Landmark
from analysis.pose.types import IdentityState, Pose
from analysis.tracker import (
    COUNTDOWN_S,
    CUE_COOLDOWN_S,
    PLACED_S,
    SOMEONE_ELSE_MESSAGE,
    SOMEONE_ELSE_S,
    VIEW_ADVICE,
    ExerciseTracker,
    Plan,
    Stage,
    ViewWatch,
)
from tests.analysis.test_counting import _cosine_reps, _mot_column

FPS = 30.0
SQUAT_PLAN = Plan(BY_SLUG["squat"], side="right", sets=1, reps=5, target_deg=80, rest_s=2.0)


def side_view_squatter(knee_deg: float, *, width: int = 640, height: int = 480) -> Pose:
    """A person side-on to the camera (facing right), both legs bent by knee_deg of flexion."""
    bend = math.radians(knee_deg)
    pixels = np.zeros((33, 2))
    hip = np.array([320.0, 250.0 + 40 * (1 - math.cos(bend))])
    knee = hip + [70 * math.sin(bend / 2) + 5, 90 * math.cos(bend / 2)]
    ankle = knee + [-90 * math.sin(bend / 2), 90 * math.cos(bend / 2)]
    shoulder = hip + [25 * math.sin(bend / 2), -130]
    for side, offset in (("RIGHT", 0.0), ("LEFT", 8.0)):  # the far side a few pixels behind
        pixels[Landmark[f"{side}_HIP"]] = hip + [offset, 0]
        pixels[Landmark[f"{side}_KNEE"]] = knee + [offset, 0]
        pixels[Landmark[f"{side}_ANKLE"]] = ankle + [offset, 0]
        pixels[Landmark[f"{side}_SHOULDER"]] = shoulder + [offset, 0]
        pixels[Landmark[f"{side}_EAR"]] = shoulder + [offset, -40]
        pixels[Landmark[f"{side}_ELBOW"]] = shoulder + [offset + 40, 10]
        pixels[Landmark[f"{side}_WRIST"]] = shoulder + [offset + 80, 10]
    # In the world the far side is behind the near one, not beside it: side-on to the camera.
    world = np.column_stack([pixels / 300, np.zeros(33)])
    for index in Landmark:
        if index.name.startswith("LEFT_"):
            world[index] = [*(pixels[Landmark[index.name.replace("LEFT", "RIGHT")]] / 300), 0.25]
    return Pose(pixels, world, np.full(33, 0.95), (width, height))


def _run(tracker, times, angles):
    return [
        tracker.update(float(t), side_view_squatter(float(a)))
        for t, a in zip(times, angles, strict=True)
    ]


def _standing(seconds: float, start: float = 0.0):
    times = start + np.arange(int(seconds * FPS)) / FPS
    return times, np.full(len(times), 3.0)


def test_nothing_counts_before_placement_and_the_countdown():
    tracker = ExerciseTracker(SQUAT_PLAN)
    assert tracker.update(0.0, None).placement == "Step into view of the camera"
    times, angles = _standing(PLACED_S + COUNTDOWN_S + 0.5, start=0.1)
    stages = [feedback.stage for feedback in _run(tracker, times, angles)]
    assert stages[0] is Stage.PLACING and Stage.COUNTDOWN in stages and stages[-1] is Stage.COUNTING
    countdown = [t for t, stage in zip(times, stages, strict=True) if stage is Stage.COUNTDOWN]
    assert countdown[0] - times[0] == pytest.approx(PLACED_S, abs=0.05)


def test_the_real_squat_trace_counts_five_live_and_finishes_the_session():
    tracker = ExerciseTracker(SQUAT_PLAN)
    t0, knee = _mot_column("knee_angle_r")
    lead_times, lead = _standing(PLACED_S + COUNTDOWN_S + 1.0)
    times = np.arange(0, t0[-1], 1 / FPS)
    angles = np.interp(times, t0, knee) + np.random.default_rng(1).normal(0, 1.5, len(times))
    feedback = _run(
        tracker,
        np.concatenate([lead_times, times + lead_times[-1] + 1 / FPS]),
        np.concatenate([lead, angles]),
    )
    reps = [f.repetition for f in feedback if f.repetition is not None]
    assert [rep.index for rep in reps] == [1, 2, 3, 4, 5]
    assert all(70 < rep.max_deg < 95 for rep in reps)
    # Each repetition keeps its joints' course, to be scored against a reference movement.
    for rep in reps:
        knee = rep.joint_traces_deg["right knee"]
        assert abs(len(knee) - len(rep.trace_deg)) <= 1 and max(knee) > 60
    assert feedback[-1].stage is Stage.DONE
    assert [f.cue for f in feedback if f.repetition][:4] == ["1", "2", "3", "4"]


def test_sets_are_separated_by_the_rest_and_numbered_on():
    plan = Plan(BY_SLUG["squat"], side="right", sets=2, reps=2, target_deg=80, rest_s=2.0)
    tracker = ExerciseTracker(plan)
    lead_times, lead = _standing(PLACED_S + COUNTDOWN_S + 1.0)
    t, knee = _cosine_reps(3, 90, 2.0, 5, fs=FPS, pause_s=0.8)
    feedback = _run(
        tracker,
        np.concatenate([lead_times, t + lead_times[-1] + 0.1]),
        np.concatenate([lead, knee]),
    )
    reps = [(f.repetition.set_number, f.repetition.index) for f in feedback if f.repetition]
    assert reps[:2] == [(1, 1), (1, 2)]
    assert (2, 1) in reps and (2, 2) in reps and len(reps) == 4
    resting = [f for f in feedback if f.stage is Stage.RESTING]
    assert resting and resting[0].rest_remaining_s == pytest.approx(2.0, abs=0.1)
    assert feedback[-1].stage is Stage.DONE


def test_a_front_view_exercise_seen_from_the_side_is_counted_with_advice_to_face_the_camera():
    plan = Plan(BY_SLUG["shoulder_abduction"], side="right", sets=1, reps=5, target_deg=150)
    tracker = ExerciseTracker(plan)
    times, angles = _standing(PLACED_S + COUNTDOWN_S + 0.5)
    feedback = _run(tracker, times, angles)
    assert all(f.placement is None for f in feedback)  # the view guides, it does not block
    assert feedback[-1].stage is Stage.COUNTING
    assert feedback[-1].advice == VIEW_ADVICE["turn_front"]


def test_the_countdown_comes_once_not_after_a_limb_leaves_the_picture_for_a_moment():
    tracker = ExerciseTracker(SQUAT_PLAN)
    times, angles = _standing(PLACED_S + COUNTDOWN_S + 0.5)
    _run(tracker, times, angles)
    lost = [tracker.update(float(t), None) for t in times[-1] + np.arange(1, 46) / FPS]
    assert {f.stage for f in lost} == {Stage.COUNTING}
    assert lost[0].placement is None  # a moment out of view is bridged silently
    assert lost[-1].placement == "Step into view of the camera"  # 1.5 s: the patient is told


def test_a_person_partly_out_of_the_picture_is_asked_to_step_back():
    pose = side_view_squatter(3.0, height=400)  # the ankles fall below the bottom edge
    feedback = ExerciseTracker(SQUAT_PLAN).update(0.0, pose)
    assert feedback.placement == "Step back a little: part of you is outside the picture"


def test_cues_come_one_at_a_time_with_a_cooldown():
    tracker = ExerciseTracker(SQUAT_PLAN)
    cues = [tracker.update(t, None).cue for t in np.arange(0, 10, 1 / FPS)]
    said = [i / FPS for i, cue in enumerate(cues) if cue]
    assert len(said) == 3 and np.diff(said) == pytest.approx([4.0, 4.0], abs=0.05)


def test_a_resumed_session_goes_on_counting_where_it_stopped():
    plan = Plan(BY_SLUG["squat"], side="right", sets=2, reps=5, target_deg=80)
    tracker = ExerciseTracker(plan, set_number=2, reps_done_in_set=3)
    lead_times, lead = _standing(PLACED_S + COUNTDOWN_S + 1.0)
    t, knee = _cosine_reps(3, 90, 2.0, 1, fs=FPS)
    feedback = _run(
        tracker,
        np.concatenate([lead_times, t + lead_times[-1] + 0.1]),
        np.concatenate([lead, knee]),
    )
    (rep,) = [f.repetition for f in feedback if f.repetition]
    assert (rep.set_number, rep.index) == (2, 4)


def test_a_movement_that_does_not_count_is_explained_to_the_patient():
    plan = Plan(BY_SLUG["squat"], side="right", sets=1, reps=10, target_deg=90, rest_s=2.0)
    tracker = ExerciseTracker(plan, countdown_done=True)
    _, full = _cosine_reps(3, 93, 2.0, 2, fs=FPS, pause_s=0.8)
    _, small = _cosine_reps(3, 30, 2.0, 1, fs=FPS, pause_s=4.0)  # 27 deg of a 90 deg range
    knee = np.concatenate([full, small])
    feedback = _run(tracker, np.arange(len(knee)) / FPS, knee)
    assert tracker.reps_in_set == 2
    (missed,) = [f for f in feedback if f.partial is not None]
    assert missed.partial.reason == "short"
    # Said once the cue cooldown after "2" has passed; the page shows it as a notice anyway.
    assert missed.not_counted == missed.cue == "Go a bit further: 30 of 90°"


def test_a_session_ended_on_the_way_back_up_counts_its_last_squat():
    tracker = ExerciseTracker(SQUAT_PLAN, countdown_done=True)
    _, knee = _cosine_reps(3, 90, 2.0, 2, fs=FPS, pause_s=0.8)
    cut = len(knee) - int(0.8 * FPS) - int(0.35 * FPS)  # two thirds of the way back up
    feedback = _run(tracker, np.arange(cut) / FPS, knee[:cut])
    assert tracker.reps_in_set == 1 and not any(f.partial for f in feedback)
    last = tracker.finish()
    assert last is not None and last.index == 2  # type: ignore[union-attr]


def turned_pose(obliquity_deg: float) -> Pose:
    """A body whose left-right axis is turned `obliquity_deg` out of the image plane (so its
    frontal plane is that far from face-on, its sagittal plane 90 minus that)."""
    turn = math.radians(obliquity_deg)
    world = np.zeros((33, 3))
    across = 0.2 * np.array([math.cos(turn), 0.0, math.sin(turn)])
    for name, height in (("SHOULDER", -0.5), ("HIP", 0.0)):
        world[Landmark[f"LEFT_{name}"]] = [0.0, height, 0.0] + across / 2
        world[Landmark[f"RIGHT_{name}"]] = [0.0, height, 0.0] - across / 2
    return Pose(np.full((33, 2), 300.0), world, np.full(33, 0.95), (640, 480))


@pytest.mark.parametrize(
    ("slug", "obliquity", "advice"),
    [
        ("shoulder_abduction", 0.0, None),  # front-view exercise seen from the front
        ("shoulder_abduction", 34.0, None),  # within the advice's limit
        ("shoulder_abduction", 36.0, "turn_front"),
        ("shoulder_abduction", 90.0, "turn_front"),
        ("squat", 90.0, None),  # side-view exercise seen side-on
        ("squat", 56.0, None),  # sagittal plane 34 deg from the image plane
        ("squat", 54.0, "turn_side"),
        ("squat", 0.0, "turn_side"),
    ],
)
def test_the_view_advice_follows_the_plane_of_the_movement(slug, obliquity, advice):
    watch = ViewWatch(BY_SLUG[slug])
    assert watch.update(0.0, turned_pose(obliquity)) == advice


def test_the_view_advice_holds_near_its_limit_and_averages_over_a_second():
    watch = ViewWatch(BY_SLUG["shoulder_abduction"])
    assert watch.update(0.0, turned_pose(32.0)) is None  # not yet beyond 35
    assert watch.update(0.1, turned_pose(60.0)) is None  # one frame moves the average a tenth
    assert watch.obliquity_deg == pytest.approx(34.8)
    for step in range(2, 40):
        watch.update(step / 10, turned_pose(80.0))
    assert watch.advising
    for step in range(40, 80):  # back to 32: still beyond the 30 at which the advice stops
        watch.update(step / 10, turned_pose(32.0))
    assert watch.update(8.0, turned_pose(32.0)) == "turn_front"
    for step in range(81, 120):
        watch.update(step / 10, turned_pose(10.0))
    assert watch.update(12.0, turned_pose(10.0)) is None
    assert watch.update(12.1, None) is None  # no pose: the last judgement stands


def test_the_view_advice_is_given_before_the_set_while_placing():
    plan = Plan(BY_SLUG["shoulder_abduction"], side="right", sets=1, reps=5, target_deg=150)
    feedback = ExerciseTracker(plan).update(0.0, side_view_squatter(3.0))
    assert feedback.stage is Stage.PLACING and feedback.advice == VIEW_ADVICE["turn_front"]


def two_legs(left_deg: float, right_deg: float) -> Pose:
    """A side-on person whose left and right knees bend independently (a heel slide's geometry
    is the same whether lying or standing: the 2D knee angle is what counts)."""
    left, right = side_view_squatter(left_deg), side_view_squatter(right_deg)
    pixels, world = right.pixels.copy(), right.world.copy()
    for point in ("HIP", "KNEE", "ANKLE"):
        index = Landmark[f"LEFT_{point}"]
        pixels[index], world[index] = left.pixels[index], left.world[index]
    return Pose(pixels, world, right.visibility, right.image_size)


def test_both_sides_of_a_one_side_exercise_are_done_in_turn_every_set():
    plan = Plan(BY_SLUG["heel_slide"], side="both", sets=2, reps=2, target_deg=80, rest_s=1.0)
    assert plan.turns == ("left", "right") and plan.reps_per_set == 4
    tracker = ExerciseTracker(plan)
    t, bend = _cosine_reps(1, 85, 2.0, 5, fs=FPS, pause_s=0.8)  # one repetition, 5 deg rest
    still = np.full(len(t), 5.0)
    # Set 1: the right leg moves first (not its turn), then the left twice, the right twice.
    moves = [(still, bend), (bend, still), (bend, still), (still, bend), (still, bend)]
    # Set 2 (after the rest): left twice, right twice.
    moves += [(still, still)] * 2 + [(bend, still)] * 2 + [(still, bend)] * 2
    lead_times, lead = _standing(PLACED_S + COUNTDOWN_S + 0.5)
    feedback = [tracker.update(float(time), two_legs(5.0, 5.0)) for time in lead_times]
    start = lead_times[-1] + 1 / FPS
    for left, right in moves:
        for time, left_deg, right_deg in zip(t + start, left, right, strict=True):
            feedback.append(tracker.update(float(time), two_legs(left_deg, right_deg)))
        start += t[-1] + 1 / FPS
    reps = [f.repetition for f in feedback if f.repetition is not None]
    assert [(r.set_number, r.index, r.side) for r in reps] == [
        (1, 1, "left"), (1, 2, "left"), (1, 3, "right"), (1, 4, "right"),
        (2, 1, "left"), (2, 2, "left"), (2, 3, "right"), (2, 4, "right"),
    ]  # fmt: skip
    assert "Now the right side" in [f.cue for f in feedback]
    switched = next(f for f in feedback if f.cue == "Now the right side")
    assert switched.side == "right" and switched.reps_in_set == 2
    assert feedback[-1].stage is Stage.DONE


def test_a_resumed_set_of_both_sides_continues_on_the_side_it_had_reached():
    plan = Plan(BY_SLUG["heel_slide"], side="both", sets=2, reps=3, target_deg=80)
    assert ExerciseTracker(plan, reps_done_in_set=2).measured_side == "left"
    assert ExerciseTracker(plan, reps_done_in_set=3).measured_side == "right"
    together = Plan(BY_SLUG["squat"], side="both", sets=1, reps=3, target_deg=80)
    assert together.turns == ("both",) and together.reps_per_set == 3


def leaning_squatter(knee_deg: float) -> Pose:
    """side_view_squatter whose trunk tips forward with the knees, 70 deg at 90 deg of flexion."""
    pose = side_view_squatter(knee_deg)
    lean = math.radians(70 * min(knee_deg, 90) / 90)
    pixels = pose.pixels.copy()
    for side in ("LEFT", "RIGHT"):
        hip = pixels[Landmark[f"{side}_HIP"]]
        shoulder = hip + 130 * np.array([math.sin(lean), -math.cos(lean)])
        shift = shoulder - pixels[Landmark[f"{side}_SHOULDER"]]
        for point in ("SHOULDER", "EAR", "ELBOW", "WRIST"):
            pixels[Landmark[f"{side}_{point}"]] += shift
    return Pose(pixels, pose.world, pose.visibility, pose.image_size)


def test_a_form_fault_is_flagged_on_every_repetition_and_cued_once_per_cooldown():
    plan = Plan(BY_SLUG["squat"], side="right", sets=1, reps=4, target_deg=90)
    tracker = ExerciseTracker(plan, countdown_done=True)
    t, knee = _cosine_reps(4, 90, 1.6, 5, fs=FPS, pause_s=0.2)  # a repetition every 1.8 s
    feedback = [
        tracker.update(float(time), leaning_squatter(float(angle)))
        for time, angle in zip(t, knee, strict=True)
    ]
    reps = [f for f in feedback if f.repetition is not None]
    flags = [f.repetition.form_flags for f in reps if f.repetition is not None]
    assert len(flags) == 4 and all("trunk_lean" in rep_flags for rep_flags in flags)
    said = [f.cue for f in reps]
    assert said[0] == BY_SLUG["squat"].form_faults[0].label  # the fault, said once...
    assert said[1] == "2"  # ...then the count while the cooldown runs
    cue_times = [f_t for f_t, f in zip(t, feedback, strict=True) if f.cue == said[0]]
    assert all(b - a >= CUE_COOLDOWN_S for a, b in zip(cue_times, cue_times[1:], strict=False))


def _squats_while(identity: IdentityState):
    """Two squats in a session that is counting, the engine saying `identity` meanwhile; then
    standing, the patient recognised again."""
    tracker = ExerciseTracker(SQUAT_PLAN, countdown_done=True)
    lead_times, lead = _standing(1.0)
    before = _run(tracker, lead_times, lead)
    t, knee = _cosine_reps(3, 90, 2.0, 2, fs=FPS, pause_s=0.8)
    during = [
        tracker.update(float(time), side_view_squatter(float(angle)), identity)
        for time, angle in zip(t + lead_times[-1] + 1 / FPS, knee, strict=True)
    ]
    after_times, after = _standing(1.0, start=float(t[-1] + lead_times[-1] + 2 / FPS))
    return before, during, _run(tracker, after_times, after)


def test_counting_pauses_while_the_engine_cannot_tell_the_patient_apart():
    """The same squats count when the engine confirms the patient and not at all while it is
    uncertain (someone else may be the one moving); the page is told after SOMEONE_ELSE_S and
    the message clears as soon as the patient is recognised again."""
    _, confirmed, _ = _squats_while("confirmed")
    assert [f.repetition.index for f in confirmed if f.repetition] == [1, 2]
    assert all(f.paused is None for f in confirmed)
    _, uncertain, after = _squats_while("uncertain")
    assert not any(f.repetition or f.partial for f in uncertain + after)
    assert all(f.angle_deg is None and f.identity == "uncertain" for f in uncertain)
    waited = [f.paused is not None for f in uncertain]
    assert waited.index(True) == pytest.approx(SOMEONE_ELSE_S * FPS, abs=1)
    assert all(waited[waited.index(True) :])
    assert {f.paused for f in uncertain} == {None, SOMEONE_ELSE_MESSAGE}
    assert [f.cue for f in uncertain if f.cue] == [SOMEONE_ELSE_MESSAGE]  # said once
    assert after[0].paused is None and after[0].identity == "confirmed"
    assert all(f.placement is None for f in uncertain)  # not "step into view": someone is


def test_someone_else_in_view_while_placing_keeps_the_countdown_from_starting():
    tracker = ExerciseTracker(SQUAT_PLAN)
    times, angles = _standing(PLACED_S + 1.0)
    feedback = [
        tracker.update(float(t), side_view_squatter(float(a)), "uncertain")
        for t, a in zip(times, angles, strict=True)
    ]
    assert {f.stage for f in feedback} == {Stage.PLACING}
    assert feedback[-1].paused == SOMEONE_ELSE_MESSAGE
    alone = _run(tracker, *_standing(PLACED_S + 0.2, start=float(times[-1]) + 0.1))
    assert alone[-1].stage is Stage.COUNTDOWN and alone[-1].paused is None
