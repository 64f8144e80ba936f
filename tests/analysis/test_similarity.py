"""Similarity of repetitions to a reference movement, and synchronisation, on real joint traces.

The real traces are nine dev-set clips' joint angles (`fixtures/joint_traces/`, written by
`extract.py` there, unsmoothed) with the repetitions the offline counter found in them: squats,
curls, push-ups and jumping jacks by two people each, and a lateral raise. Each is smoothed here
as the offline analysis smooths. Synthetic geometry checks the exact angles and the skeleton.
"""

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from analysis.charts import aligned_curves_figure
from analysis.counting import RepetitionCounter, Sample
from analysis.exercises import BY_SLUG, ExerciseDefinition
from analysis.kinematics import PoseSeries
from analysis.landmarks import Landmark
from analysis.repetitions import RepetitionMetrics
from analysis.similarity import (
    DEVIATION_DEG,
    JOINT_NAMES,
    REP_SAMPLES,
    ReferenceTemplate,
    joint_trajectories,
    played_repeatedly,
    reference_from_poses,
    reference_from_trajectories,
    repetition_slice,
    score_from_error,
    score_repetition,
    smooth_joint_angles,
    synchronisation,
    thresholds_from_reference,
)
from analysis.video import count_repetitions, read_frames, track_poses, video_fps

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRACES = FIXTURES / "joint_traces"
SAME_EXERCISE = (  # (reference, another person doing the same exercise)
    ("Vaidansh__squatsz", "catalinaa123__GobSq"),
    ("Vaidansh__bc", "akilaanjanadissanayaka__exercising"),
    ("Divyansh3021__push_up-test", "Divyansh3021__push_up"),
)
Joint = TypeVar("Joint")
MANY_REPS = (  # clips with at least three repetitions: one is held out, the rest the reference
    "Vaidansh__squatsz",
    "Vaidansh__bc",
    "akilaanjanadissanayaka__exercising",
    "NoorAshraf__lateral_raise",
    "Divyansh3021__push_up-test",
    "Divyansh3021__push_up",
    "ahmedlila__3_Count_Jumping_Jacks",
    "DanAzevedo__jumpingjacks",
)


@dataclass(frozen=True)
class Clip:
    name: str
    exercise: ExerciseDefinition
    side: str
    reps: tuple[RepetitionMetrics, ...]
    t_s: np.ndarray
    trajectories: dict[str, np.ndarray]  # smoothed

    def repetition(self, index: int) -> dict[str, np.ndarray]:
        rep = self.reps[index]
        return repetition_slice(self.trajectories, self.t_s, rep.start_s, rep.end_s)

    def template(self, leave_out: int | None = None, side: str | None = None) -> ReferenceTemplate:
        reps = [rep for i, rep in enumerate(self.reps) if i != leave_out]
        return reference_from_trajectories(
            self.trajectories, self.t_s, self.exercise, reps, side or self.side
        )


@cache
def clip(name: str) -> Clip:
    data = json.loads((TRACES / f"{name}.json").read_text())
    t_s = np.array(data["t_s"], dtype=float)
    raw = {
        joint: np.array([np.nan if v is None else v for v in values], dtype=float)
        for joint, values in data["joints"].items()
    }
    return Clip(
        name=name,
        exercise=BY_SLUG[data["exercise"]],
        side=data["side"],
        reps=tuple(
            RepetitionMetrics(**{k: v for k, v in rep.items() if k != "quality"})
            for rep in data["repetitions"]
        ),
        t_s=t_s,
        trajectories=smooth_joint_angles(raw, t_s),
    )


def all_clips() -> list[str]:
    return sorted(path.stem for path in TRACES.glob("*.json"))


def mean_score(template: ReferenceTemplate, other: Clip) -> float | None:
    """The mean score of a clip's repetitions against a template; None where the template's own
    joint is never seen in the clip (a squat template and a waist-up curl)."""
    scores = []
    for index in range(len(other.reps)):
        try:
            scores.append(score_repetition(template, other.repetition(index), other.side).score)
        except ValueError:
            continue
    return statistics.mean(scores) if scores else None


def best_other_exercise(template: ReferenceTemplate) -> float:
    scores = [
        mean_score(template, clip(name))
        for name in all_clips()
        if clip(name).exercise.slug != template.exercise
    ]
    return max(score for score in scores if score is not None)


def half_range(trajectories: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same repetition with every joint's excursion from where it started halved."""
    return {name: values[0] + 0.5 * (values - values[0]) for name, values in trajectories.items()}


def mirrored(by_joint: dict[str, Joint]) -> dict[str, Joint]:
    """Left and right swapped, as a patient doing the movement with the other side."""
    swap = {"left": "right", "right": "left"}
    return {f"{swap[n.split()[0]]} {n.split()[1]}": v for n, v in by_joint.items()}


# --- Same movement, other movements -----------------------------------------------------------
def test_the_fixtures_hold_every_compared_joint_and_the_counted_repetitions() -> None:
    assert len(all_clips()) == 9
    for name in all_clips():
        assert set(clip(name).trajectories) == set(JOINT_NAMES)
        assert clip(name).reps


@pytest.mark.parametrize("name", MANY_REPS)
def test_another_repetition_of_the_same_clip_scores_higher_than_any_other_exercise(
    name: str,
) -> None:
    real = clip(name)
    held_out = [
        score_repetition(real.template(leave_out=i), real.repetition(i), real.side).score
        for i in range(len(real.reps))
    ]
    assert min(held_out) > best_other_exercise(real.template())


@pytest.mark.parametrize(("reference", "other"), SAME_EXERCISE)
def test_another_persons_clip_of_the_same_exercise_scores_higher_than_other_exercises(
    reference: str, other: str
) -> None:
    template = clip(reference).template()
    same = mean_score(template, clip(other))
    assert same is not None
    assert same > best_other_exercise(template)


@pytest.mark.parametrize("name", MANY_REPS)
def test_a_half_range_repetition_scores_lower_than_the_full_one(name: str) -> None:
    real = clip(name)
    for i in range(len(real.reps)):
        template = real.template(leave_out=i)
        full = score_repetition(template, real.repetition(i), real.side)
        half = score_repetition(template, half_range(real.repetition(i)), real.side)
        assert half.score < full.score - 5


def test_a_mirrored_movement_against_the_other_side_scores_as_the_original() -> None:
    real = clip("NoorAshraf__lateral_raise")
    template = real.template(leave_out=0, side="left")
    original = score_repetition(template, real.repetition(0), "left")
    other_side = score_repetition(template, mirrored(real.repetition(0)), "right")
    assert other_side.score == original.score
    assert other_side.per_joint_deg == mirrored(original.per_joint_deg)


def test_a_one_sided_movement_is_compared_with_the_patients_own_side() -> None:
    """A therapist's left arm against a patient's right arm (the other arm of each unseen): the
    right arm is compared with the reference's left."""
    real = clip("NoorAshraf__lateral_raise")
    left_arm = {
        n: (v if n.startswith("left") else v * np.nan) for n, v in real.trajectories.items()
    }
    template = reference_from_trajectories(left_arm, real.t_s, real.exercise, real.reps[1:], "left")
    right_arm = {
        n: (v if n.startswith("right") else v * np.nan)
        for n, v in mirrored(real.repetition(0)).items()
    }
    result = score_repetition(template, right_arm, "right")
    assert set(result.per_joint_deg) == {"right shoulder", "right elbow"}
    assert result.score > 90
    with pytest.raises(ValueError, match="left shoulder"):
        score_repetition(template, right_arm, "left")  # told the wrong side: nothing in common


@pytest.mark.parametrize("name", MANY_REPS)
def test_deviating_joints_name_the_altered_joint_first(name: str) -> None:
    real = clip(name)
    template = real.template(leave_out=0)
    as_done = score_repetition(template, real.repetition(0), real.side)
    altered = dict(real.repetition(0))
    altered_joint = next(
        name
        for name in (f"left {real.exercise.angle.joint}", f"right {real.exercise.angle.joint}")
        if np.isfinite(altered[name]).all()
    )
    altered[altered_joint] = altered[altered_joint] + 40  # 40 deg further all the way through
    result = score_repetition(template, altered, real.side)
    assert result.deviating_joints[0] == altered_joint
    assert altered_joint not in as_done.deviating_joints
    assert result.score < as_done.score


def test_a_joint_held_still_at_another_angle_is_named_too() -> None:
    """A squat done with the elbows bent 45 deg more: the elbows hardly move, but they are off."""
    real = clip("Vaidansh__squatsz")
    template = real.template(leave_out=1)
    altered = dict(real.repetition(1))
    altered["right elbow"] = altered["right elbow"] + 45
    result = score_repetition(template, altered, real.side)
    assert result.deviating_joints == ["right elbow"]
    assert result.per_joint_deg["right elbow"] > DEVIATION_DEG


def test_joints_not_seen_are_left_out_and_the_exercises_own_joint_is_required() -> None:
    real = clip("Vaidansh__bc")
    template = real.template(leave_out=0)
    rep = dict(real.repetition(0))
    rep["left shoulder"] = np.full_like(rep["left shoulder"], np.nan)
    assert "left shoulder" not in score_repetition(template, rep, real.side).per_joint_deg
    rep["left elbow"] = np.full_like(rep["left elbow"], np.nan)
    rep["right elbow"] = np.full_like(rep["right elbow"], np.nan)
    with pytest.raises(ValueError, match="elbow"):
        score_repetition(template, rep, real.side)


def test_the_score_falls_monotonically_with_the_error() -> None:
    errors = np.linspace(0, 90, 181)
    scores = [score_from_error(float(e), 20.0) for e in errors]
    assert scores[0] == 100.0
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False))
    assert score_from_error(20.0, 20.0) == 50.0


# --- The template -----------------------------------------------------------------------------
def test_a_template_holds_every_repetition_resampled_and_the_medians() -> None:
    real = clip("NoorAshraf__lateral_raise")
    template = real.template()
    assert template.count == len(real.reps)
    assert all(
        reps.shape == (len(real.reps), REP_SAMPLES) for reps in template.repetitions.values()
    )
    median = pytest.approx  # the template keeps 0.1 deg
    assert template.rom_deg == median(statistics.median(r.rom_deg for r in real.reps), abs=0.05)
    assert template.peak_deg == median(statistics.median(r.max_deg for r in real.reps), abs=0.05)
    assert template.rest_deg == median(statistics.median(r.min_deg for r in real.reps), abs=0.05)
    # Waist up and seen from the front: the legs are not seen, the arms are.
    assert np.isnan(template.repetitions["left knee"]).all()
    assert np.isfinite(template.repetitions["right shoulder"]).all()


def test_thresholds_from_a_reference_count_the_reference_itself() -> None:
    """The therapist's peak and range as the patient's counter thresholds: the counter counts the
    therapist's own repetitions with them."""
    real = clip("NoorAshraf__lateral_raise")
    template = real.template()
    target_deg, expected_rom_deg = thresholds_from_reference(template)
    assert (target_deg, expected_rom_deg) == (template.peak_deg, template.rom_deg)
    assert target_deg > template.rest_deg + expected_rom_deg / 2  # the arm is raised to it
    counter = RepetitionCounter(
        real.exercise, side=real.side, target_deg=target_deg, expected_rom_deg=expected_rom_deg
    )
    left, right = real.trajectories["left shoulder"], real.trajectories["right shoulder"]
    for i, t_s in enumerate(real.t_s):
        counter.update(Sample(float(t_s), float(left[i]), float(right[i])))
    counter.finish()
    assert len(counter.reps) == len(real.reps)


def test_a_template_survives_json() -> None:
    template = clip("Divyansh3021__push_up").template()
    again = ReferenceTemplate.from_json(template.to_json())
    assert again.to_json() == template.to_json()
    for name in JOINT_NAMES:
        np.testing.assert_array_equal(again.repetitions[name], template.repetitions[name])
    assert (again.exercise, again.side, again.rom_deg) == (
        "push_up",
        template.side,
        template.rom_deg,
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda d: "not json at all",
        lambda d: json.dumps({**d, "version": 99}),
        lambda d: json.dumps({**d, "exercise": ""}),
        lambda d: json.dumps({**d, "joint": 3}),
        lambda d: json.dumps({**d, "side": "middle"}),
        lambda d: json.dumps({k: v for k, v in d.items() if k != "rom_deg"}),
        lambda d: json.dumps({**d, "rom_deg": "wide"}),
        lambda d: json.dumps({**d, "rom_deg": math.nan}),
        lambda d: json.dumps({**d, "representative": 50}),
        lambda d: json.dumps({**d, "repetitions": {**d["repetitions"], "left knee": [[1.0, 2.0]]}}),
        lambda d: json.dumps({**d, "demonstration": {"fps": 15, "frames": [[0.5] * 65]}}),
        lambda d: json.dumps([d]),
    ],
)
def test_bad_template_json_is_a_value_error(change: Callable[[dict[str, Any]], str]) -> None:
    data = json.loads(clip("Divyansh3021__push_up").template().to_json())
    with pytest.raises(ValueError):
        ReferenceTemplate.from_json(change(data))


def test_no_repetition_makes_no_template() -> None:
    real = clip("NoorAshraf__lateral_raise")
    with pytest.raises(ValueError, match="no repetition"):
        reference_from_trajectories(real.trajectories, real.t_s, real.exercise, [], "both")


# --- Synthetic geometry: exact angles and the demonstration skeleton ---------------------------
def arm_curl_poses(elbow_deg: np.ndarray, fps: float = 30.0) -> PoseSeries:
    """A person facing the camera, arms hanging, the right forearm swinging up in the image plane
    to `elbow_deg` of flexion (pixels, y down); the left leg's ankle never seen."""
    frames = len(elbow_deg)
    points = np.zeros((frames, 33, 2))
    body = {
        "LEFT_SHOULDER": (360, 100),
        "RIGHT_SHOULDER": (280, 100),
        "LEFT_HIP": (350, 260),
        "RIGHT_HIP": (290, 260),
        "LEFT_ELBOW": (365, 180),
        "RIGHT_ELBOW": (275, 180),
        "LEFT_WRIST": (370, 260),
        "LEFT_KNEE": (350, 360),
        "RIGHT_KNEE": (290, 360),
        "LEFT_ANKLE": (350, 460),
        "RIGHT_ANKLE": (290, 460),
        "NOSE": (320, 60),
    }
    for name, xy in body.items():
        points[:, Landmark[name]] = xy
    upper_arm = np.array([275 - 280, 180 - 100], dtype=float)
    direction = upper_arm / np.linalg.norm(upper_arm)
    radians = np.radians(elbow_deg)
    cos, sin = np.cos(radians), np.sin(radians)
    # The forearm continues the upper arm, turned by the flexion towards the body's midline.
    forearm = np.stack(
        [direction[0] * cos + direction[1] * sin, direction[1] * cos - direction[0] * sin], axis=1
    )
    points[:, Landmark.RIGHT_WRIST] = points[:, Landmark.RIGHT_ELBOW] + 80 * forearm
    world = np.concatenate([points / 400, np.zeros((frames, 33, 1))], axis=2)
    visibility = np.ones((frames, 33))
    visibility[:, Landmark.LEFT_ANKLE] = 0.1
    return PoseSeries(np.arange(frames) / fps, points, world, visibility)


def curls(count: int, fps: float = 30.0) -> np.ndarray:
    """`count` curls from 0 to 120 deg of elbow flexion, 2 s each, with 1 s rests."""
    one = 60 * (1 - np.cos(np.linspace(0, 2 * np.pi, int(2 * fps))))
    rest = np.zeros(int(fps))
    return np.concatenate([rest] + [np.concatenate([one, rest]) for _ in range(count)])


def test_joint_trajectories_measure_the_known_angles() -> None:
    elbow = curls(2)
    trajectories = joint_trajectories(arm_curl_poses(elbow), BY_SLUG["elbow_flexion"])
    assert set(trajectories) == set(JOINT_NAMES)
    np.testing.assert_allclose(trajectories["right elbow"], elbow, atol=1.5)
    np.testing.assert_allclose(trajectories["left elbow"], 0, atol=1e-6)  # hanging straight
    assert np.isnan(trajectories["left knee"]).all()  # its ankle is never seen
    assert np.isfinite(trajectories["right knee"]).all()


def test_a_template_from_poses_has_a_demonstration_skeleton_in_the_unit_square() -> None:
    poses = arm_curl_poses(curls(3))
    exercise = BY_SLUG["elbow_flexion"]
    side, reps, _ = count_repetitions(poses, exercise, side="right")
    assert len(reps) == 3
    template = reference_from_poses(poses, exercise, reps, side)
    frames = template.demonstration.frames
    shown = reps[template.representative]
    assert len(frames) == math.floor((shown.end_s - shown.start_s) * 15 + 1e-6) + 1
    seen = frames[np.isfinite(frames)]
    assert seen.min() >= 0 and seen.max() <= 1
    assert np.isnan(frames[:, Landmark.LEFT_ANKLE]).all()
    assert template.peak_deg == pytest.approx(120, abs=2)
    again = ReferenceTemplate.from_json(template.to_json())
    np.testing.assert_array_equal(again.demonstration.frames, frames)


def test_a_template_from_a_real_video() -> None:
    """The repository's own squat clip (5 frames/s): pose, repetitions, template, its score."""
    video = FIXTURES / "pose_squats.mp4"
    poses, _ = track_poses(read_frames(video, video_fps(video)))
    exercise = BY_SLUG["squat"]
    side, reps, _ = count_repetitions(poses, exercise)
    template = reference_from_poses(poses, exercise, reps, side)
    assert template.count == len(reps) == 2
    assert np.isfinite(template.demonstration.frames).any()
    own = repetition_slice(
        joint_trajectories(poses, exercise), poses.t_s, reps[0].start_s, reps[0].end_s
    )
    assert score_repetition(template, own, side).score == 100.0


# --- Synchronisation --------------------------------------------------------------------------
def delayed(trajectories: dict[str, np.ndarray], frames: int) -> dict[str, np.ndarray]:
    """The same movement `frames` later (negative: earlier), unseen where it has no data."""
    out = {}
    for name, values in trajectories.items():
        shifted = np.full_like(values, np.nan)
        if frames >= 0:
            shifted[frames:] = values[: len(values) - frames]
        else:
            shifted[:frames] = values[-frames:]
        out[name] = shifted
    return out


def test_a_person_in_step_with_themselves_is_fully_synchronised() -> None:
    real = clip("ahmedlila__3_Count_Jumping_Jacks")
    fps = 1 / float(np.median(np.diff(real.t_s)))
    result = synchronisation(real.trajectories, real.trajectories, fps)
    assert result.score == 100.0
    assert result.lag_s == 0.0
    assert all(i == j for i, j in result.path)


@pytest.mark.parametrize(
    ("name", "lag_s"),
    [
        ("ahmedlila__3_Count_Jumping_Jacks", 0.3),  # a repetition takes 0.8 s
        ("ahmedlila__3_Count_Jumping_Jacks", -0.3),
        ("Divyansh3021__push_up", 0.4),  # 3.7 s, most of it at rest
        ("Divyansh3021__push_up", -1.0),
    ],
)
def test_a_delay_is_measured(name: str, lag_s: float) -> None:
    real = clip(name)
    fps = 1 / float(np.median(np.diff(real.t_s)))
    frames = round(lag_s * fps)
    result = synchronisation(real.trajectories, delayed(real.trajectories, frames), fps)
    assert result.lag_s == pytest.approx(frames / fps, abs=1.5 / fps)


def test_a_longer_delay_scores_lower() -> None:
    real = clip("Divyansh3021__push_up")
    fps = 1 / float(np.median(np.diff(real.t_s)))
    scores = [
        synchronisation(real.trajectories, delayed(real.trajectories, round(s * fps)), fps).score
        for s in (0.0, 0.2, 0.4, 0.8, 1.2)
    ]
    assert scores[0] == 100.0
    assert scores == sorted(scores, reverse=True)
    assert scores[2] < 75  # 0.4 s behind: in step less than three quarters


def test_a_person_against_the_reference_played_repeatedly() -> None:
    """The clip against its own reference looped at the median pace, and against a lateral raise's
    reference looped: the same movement is in better step."""
    real = clip("ahmedlila__3_Count_Jumping_Jacks")
    fps = 1 / float(np.median(np.diff(real.t_s)))
    first, last = real.reps[0].start_s, real.reps[-1].end_s
    person = repetition_slice(real.trajectories, real.t_s, first, last)
    own = played_repeatedly(real.template(), fps, len(real.reps))
    raise_ = played_repeatedly(clip("NoorAshraf__lateral_raise").template(), fps, len(real.reps))
    joints = ["left shoulder", "right shoulder"]
    with_own = synchronisation(person, own, fps, joints)
    with_raise = synchronisation(person, raise_, fps, joints)
    assert with_own.score > with_raise.score


# --- The figure -------------------------------------------------------------------------------
def test_the_aligned_curves_figure_draws_raw_and_aligned_curves() -> None:
    real = clip("ahmedlila__3_Count_Jumping_Jacks")
    fps = 1 / float(np.median(np.diff(real.t_s)))
    later = delayed(real.trajectories, 9)
    result = synchronisation(real.trajectories, later, fps, ["left shoulder"])
    fig = aligned_curves_figure(
        list(real.trajectories["left shoulder"]),
        list(later["left shoulder"]),
        result.path,
        fps=fps,
        names=("Patient", "Reference"),
        title="Left shoulder",
    )
    names = [trace.name for trace in fig.data]
    assert names == [
        "Patient (as recorded)",
        "Reference (as recorded)",
        "Patient (aligned)",
        "Reference (aligned)",
    ]
    assert fig.layout.xaxis.title.text == "seconds"
    assert fig.layout.yaxis.title.text == "degrees"
    aligned_patient, aligned_reference = fig.data[2].y, fig.data[3].y
    seen = np.isfinite(aligned_patient) & np.isfinite(aligned_reference)
    # Aligned, the delayed copy lies on the original.
    assert np.abs(np.subtract(aligned_patient, aligned_reference)[seen]).mean() < 2
