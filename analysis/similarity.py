"""How closely a patient's repetition follows a therapist's reference movement, and how well two
people move together: dynamic time warping (DTW, dtaidistance) over clinical joint angles.

    trajectories = joint_trajectories(poses, exercise)          # {"left knee": (T,) deg, ...}
    template = reference_from_poses(poses, exercise, reps, side="left")
    target_deg, expected_rom_deg = thresholds_from_reference(template)
    one = repetition_slice(patient_trajectories, patient_poses.t_s, rep.start_s, rep.end_s)
    score_repetition(template, one, side="right")             # RepetitionSimilarity

Every trajectory is a clinical angle in degrees (0: anatomical position), NaN where the joint is
not seen. Amplitudes are compared as they are, never z-normalised: half the range is a different
movement. docs/similarity.md gives the method, the score scales and the limits.
"""

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from dtaidistance import dtw_ndim

from analysis.exercises import (
    ELBOW_FLEXION,
    HIP_FLEXION,
    KNEE_FLEXION,
    SHOULDER_ABDUCTION,
    AngleSpace,
    ExerciseDefinition,
    JointAngle,
)
from analysis.filters import fill_short_gaps, sample_rate_hz, smooth_recorded
from analysis.kinematics import (
    MIN_VISIBILITY,
    SIDES,
    PoseSeries,
    joint_angle_deg,
    world_space_frames,
)
from analysis.repetitions import RepetitionMetrics

# The compared angles, per side. Shoulder flexion and abduction are the same three points (hip,
# shoulder, elbow), and so are hip flexion and abduction: the camera sees whichever plane faces it.
JOINTS: dict[str, JointAngle] = {
    "shoulder": SHOULDER_ABDUCTION,
    "elbow": ELBOW_FLEXION,
    "hip": HIP_FLEXION,
    "knee": KNEE_FLEXION,
}
JOINT_NAMES = tuple(f"{side} {joint}" for side in SIDES for joint in JOINTS)  # "left shoulder"...

REP_SAMPLES = 50  # a repetition resampled to this many points: its duration is not compared
WINDOW_SHARE = 0.2  # Sakoe-Chiba band: a point may align this share of a repetition away
MIN_SEEN_SHARE = 0.8  # a joint seen in less of a repetition is left out of its comparison
# A joint whose mean aligned error exceeds this is named as deviating: about twice BlazePose's 2D
# angle error on a limb seen within 30 deg of face-on (7 deg, docs/architecture.md).
DEVIATION_DEG = 15.0
# A repetition off by that much on average scores 50; one off by the measurement error, 82.
HALF_SCORE_DEG = DEVIATION_DEG
POSTURE_WEIGHT_DEG = 20.0  # a joint's weight beyond its range of motion (see _align)
# Synchronisation: the band of the alignment and the mean timing offset that halves the score.
MAX_LAG_S = 1.5
HALF_SCORE_LAG_S = 0.5
MOVING_DEG = 20.0  # by default, joints whose range (5th-95th percentile) reaches this are synced
MOVING_DPS = 30.0  # a joint turning faster than this is moving (smoothed jitter at rest is slower)
ANIMATION_FPS = 15.0
TEMPLATE_VERSION = 1

Trajectories = Mapping[str, np.ndarray]


# --- Joint trajectories -----------------------------------------------------------------------
def raw_joint_angles(poses: PoseSeries, exercise: ExerciseDefinition) -> dict[str, np.ndarray]:
    """Every compared angle (T,) before smoothing, each frame in the space the offline analysis
    measures the exercise's own angle in (image, or world where the plane is seen obliquely)."""
    in_world = world_space_frames(poses, exercise)
    return {
        f"{side} {joint}": np.where(
            in_world,
            joint_angle_deg(poses, angle, side, AngleSpace.WORLD_3D),
            joint_angle_deg(poses, angle, side, AngleSpace.IMAGE_2D),
        )
        for side in SIDES
        for joint, angle in JOINTS.items()
    }


def smooth_joint_angles(angles: Trajectories, t_s: np.ndarray) -> dict[str, np.ndarray]:
    """The zero-phase smoothing of the offline analysis (analysis.video), joint by joint."""
    fs = sample_rate_hz(t_s)
    return {name: smooth_recorded(np.asarray(values, float), fs) for name, values in angles.items()}


def joint_trajectories(poses: PoseSeries, exercise: ExerciseDefinition) -> dict[str, np.ndarray]:
    """The compared angles (T,) of both sides, in degrees, smoothed; NaN where not seen."""
    return smooth_joint_angles(raw_joint_angles(poses, exercise), poses.t_s)


def repetition_slice(
    trajectories: Trajectories, t_s: np.ndarray, start_s: float, end_s: float
) -> dict[str, np.ndarray]:
    """The part of each trajectory between a repetition's start and end (inclusive)."""
    # Repetition times are rounded to the millisecond (analysis.counting).
    inside = (t_s >= start_s - 1e-3) & (t_s <= end_s + 1e-3)
    return {name: np.asarray(values)[inside] for name, values in trajectories.items()}


def _resampled(values: np.ndarray, samples: int = REP_SAMPLES) -> np.ndarray:
    """One repetition's trajectory on `samples` evenly spaced points; all NaN when the joint was
    seen in less than MIN_SEEN_SHARE of it (short gaps are bridged)."""
    values = np.asarray(values, dtype=float)
    seen = np.isfinite(values)
    if len(values) < 2 or seen.sum() < 2 or seen.mean() < MIN_SEEN_SHARE:
        return np.full(samples, np.nan)
    position = np.linspace(0.0, 1.0, len(values))
    return np.interp(np.linspace(0.0, 1.0, samples), position[seen], values[seen])


def _mirrored(trajectories: Mapping[str, Any]) -> dict[str, Any]:
    """Left and right swapped: a movement done with the other side."""
    swap = {"left": "right", "right": "left"}
    return {
        f"{swap[name.split(' ')[0]]} {name.split(' ', 1)[1]}": v for name, v in trajectories.items()
    }


def _needs_mirroring(reference_side: str, patient_side: str) -> bool:
    return {reference_side, patient_side} == {"left", "right"}


# --- Aligning two movements -------------------------------------------------------------------
@dataclass(frozen=True)
class _Alignment:
    error_deg: float  # the weighted mean of the joints' errors
    per_joint_deg: dict[str, float]  # mean absolute difference along the warping path
    path: list[tuple[int, int]]


def warping_path(first: np.ndarray, second: np.ndarray, window: int) -> list[tuple[int, int]]:
    """DTW (squared Euclidean) of two (T, J) arrays within a Sakoe-Chiba band of `window`
    samples: (first's index, second's index) pairs from (0, 0) to both ends."""
    if first.shape[1] == 1:
        # dtaidistance's C code rejects (T, 1) arrays as multi-dimensional; one dimension is 1-D.
        first, second = first[:, 0].copy(), second[:, 0].copy()
    path = dtw_ndim.warping_path(first, second, window=window, use_c=True)
    return [(int(i), int(j)) for i, j in path]


def _align(
    first: Trajectories, second: Trajectories, window: int, required: Sequence[str] = ()
) -> _Alignment | None:
    """DTW of the joints seen throughout both (gap-free (T,) arrays in degrees); None when they
    share none, or none of `required`. A joint weighs its range of motion (the larger of the two)
    plus POSTURE_WEIGHT_DEG: the moving joints carry the movement, so that the still ones do not
    dilute its error, while a still joint held at another angle still counts."""
    names = [n for n in first if n in second and _complete(first[n]) and _complete(second[n])]
    if not names or (required and not set(required) & set(names)):
        return None
    a = np.column_stack([first[n] for n in names]).astype(np.float64)
    b = np.column_stack([second[n] for n in names]).astype(np.float64)
    path = warping_path(a, b, window)
    i, j = np.array(path).T
    errors = np.abs(a[i] - b[j]).mean(axis=0)
    weights = np.maximum(np.ptp(a, axis=0), np.ptp(b, axis=0)) + POSTURE_WEIGHT_DEG
    return _Alignment(
        error_deg=float(np.average(errors, weights=weights)),
        per_joint_deg={n: round(float(e), 1) for n, e in zip(names, errors, strict=True)},
        path=path,
    )


def _complete(values: np.ndarray) -> bool:
    return len(values) > 0 and bool(np.isfinite(values).all())


def score_from_error(error: float, half: float) -> float:
    """0-100, falling monotonically with the error: 100 at 0, 50 at `half`, 20 at twice it
    (100 / (1 + (error / half)^2): errors at the level of measurement noise cost little)."""
    return 100.0 / (1.0 + (error / half) ** 2)


# --- The reference template -------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SkeletonAnimation:
    """One repetition of the demonstration skeleton: `frames` (F, 33, 2) landmark x, y at `fps`,
    normalised so that the whole repetition fits a unit square (aspect kept, y down), NaN where a
    landmark is not seen. Empty (F = 0) for a template made from angles alone."""

    fps: float
    frames: np.ndarray


@dataclass(frozen=True, eq=False)
class ReferenceTemplate:
    """A therapist's recorded movement: each repetition's joint trajectories resampled to
    REP_SAMPLES points (degrees, NaN where not seen), the exercise's own angle's rest, peak and
    range (medians over the repetitions), the median repetition's duration, and the demonstration
    skeleton of the most typical repetition (`representative`)."""

    exercise: str  # the exercise's slug (a library one, or a therapist's own)
    joint: str  # the exercise's own joint ("knee"): it must be seen for a score
    side: str  # "left", "right" or "both": the side the therapist performed with
    repetitions: Mapping[str, np.ndarray]  # joint -> (repetitions, REP_SAMPLES)
    rest_deg: float
    peak_deg: float
    rom_deg: float
    rep_duration_s: float
    representative: int
    demonstration: SkeletonAnimation

    @property
    def count(self) -> int:
        return len(next(iter(self.repetitions.values())))

    def repetition(self, index: int) -> dict[str, np.ndarray]:
        return {name: reps[index] for name, reps in self.repetitions.items()}

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": TEMPLATE_VERSION,
                "exercise": self.exercise,
                "joint": self.joint,
                "side": self.side,
                "rest_deg": self.rest_deg,
                "peak_deg": self.peak_deg,
                "rom_deg": self.rom_deg,
                "rep_duration_s": self.rep_duration_s,
                "representative": self.representative,
                "repetitions": {
                    name: [_nullable(rep) for rep in reps]
                    for name, reps in self.repetitions.items()
                },
                "demonstration": {
                    "fps": self.demonstration.fps,
                    "frames": [_nullable(frame.ravel()) for frame in self.demonstration.frames],
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> "ReferenceTemplate":
        """The template `to_json` wrote; ValueError for anything else."""
        try:
            return _template_from_data(json.loads(text))
        except (KeyError, TypeError, AttributeError, IndexError) as error:
            raise ValueError(f"not a reference template: {error!r}") from error


def _nullable(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values).ravel()]


def _numbers(values: Any, length: int, what: str) -> np.ndarray:
    """A list of `length` numbers or nulls (NaN) from JSON."""
    if not isinstance(values, list) or len(values) != length:
        raise ValueError(f"{what}: expected a list of {length} numbers")
    return np.array([np.nan if v is None else _finite(v, what) for v in values], dtype=float)


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what}: expected a number")
    return float(value)


def _template_from_data(data: Any) -> ReferenceTemplate:
    if not isinstance(data, dict) or data.get("version") != TEMPLATE_VERSION:
        raise ValueError(f"not a reference template of version {TEMPLATE_VERSION}")
    texts = (data["exercise"], data["joint"])
    if not all(isinstance(text, str) and text for text in texts):
        raise ValueError("exercise and joint: expected names")
    if data["side"] not in ("left", "right", "both"):
        raise ValueError("unknown side")
    reps = data["repetitions"]
    if not isinstance(reps, dict) or set(reps) != set(JOINT_NAMES):
        raise ValueError(f"repetitions: expected the joints {JOINT_NAMES}")
    count = len(reps[JOINT_NAMES[0]])
    if count == 0 or any(len(each) != count for each in reps.values()):
        raise ValueError("repetitions: every joint needs the same, non-zero number of them")
    representative = data["representative"]
    if not isinstance(representative, int) or not 0 <= representative < count:
        raise ValueError("representative: not one of the repetitions")
    demo = data["demonstration"]
    fps = _finite(demo["fps"], "demonstration fps")
    if fps <= 0 or not isinstance(demo["frames"], list):
        raise ValueError("demonstration: expected a positive fps and a list of frames")
    frames = [_numbers(frame, 66, "demonstration frame") for frame in demo["frames"]]
    return ReferenceTemplate(
        exercise=data["exercise"],
        joint=data["joint"],
        side=data["side"],
        repetitions={
            name: np.array([_numbers(rep, REP_SAMPLES, name) for rep in reps[name]])
            for name in JOINT_NAMES
        },
        rest_deg=_finite(data["rest_deg"], "rest_deg"),
        peak_deg=_finite(data["peak_deg"], "peak_deg"),
        rom_deg=_finite(data["rom_deg"], "rom_deg"),
        rep_duration_s=_finite(data["rep_duration_s"], "rep_duration_s"),
        representative=representative,
        demonstration=SkeletonAnimation(fps, np.array(frames).reshape(len(frames), 33, 2)),
    )


def reference_from_poses(
    poses: PoseSeries, exercise: ExerciseDefinition, reps: Sequence[RepetitionMetrics], side: str
) -> ReferenceTemplate:
    """The template of a therapist's recording: its poses and the repetitions `count_repetitions`
    found in them, done with `side` ("left", "right" or "both")."""
    template = reference_from_trajectories(
        joint_trajectories(poses, exercise), poses.t_s, exercise, reps, side
    )
    shown = reps[template.representative]
    animation = skeleton_animation(poses, shown.start_s, shown.end_s)
    return replace(template, demonstration=animation)


def reference_from_trajectories(
    trajectories: Trajectories,
    t_s: np.ndarray,
    exercise: ExerciseDefinition,
    reps: Sequence[RepetitionMetrics],
    side: str,
) -> ReferenceTemplate:
    """The template from joint trajectories (T,) at times `t_s` alone, without a demonstration
    skeleton."""
    if not reps:
        raise ValueError(
            "no repetition was counted in the reference recording: record it again with the "
            "whole movement in view, from rest to the turning point and back"
        )
    if side not in ("left", "right", "both"):
        raise ValueError(f"side must be 'left', 'right' or 'both', not {side!r}")
    cut = [
        {
            n: np.round(_resampled(v), 1)
            for n, v in repetition_slice(trajectories, t_s, r.start_s, r.end_s).items()
        }
        for r in reps
    ]
    thresholds = exercise.thresholds
    return ReferenceTemplate(
        exercise=exercise.slug,
        joint=exercise.angle.joint,
        side=side,
        repetitions={name: np.array([rep[name] for rep in cut]) for name in JOINT_NAMES},
        rest_deg=round(
            statistics.median(thresholds.peak_end(r.max_deg, r.min_deg) for r in reps), 1
        ),
        peak_deg=round(
            statistics.median(thresholds.peak_end(r.min_deg, r.max_deg) for r in reps), 1
        ),
        rom_deg=round(statistics.median(r.rom_deg for r in reps), 1),
        rep_duration_s=round(statistics.median(r.end_s - r.start_s for r in reps), 3),
        representative=_most_typical(cut),
        demonstration=SkeletonAnimation(ANIMATION_FPS, np.zeros((0, 33, 2))),
    )


def _most_typical(reps: Sequence[Trajectories]) -> int:
    """The repetition whose summed aligned error to the others is smallest (the medoid)."""
    if len(reps) <= 2:
        return 0
    window = _rep_window()
    totals = [
        sum(
            alignment.error_deg
            for other in reps
            if other is not rep and (alignment := _align(rep, other, window)) is not None
        )
        for rep in reps
    ]
    return int(np.argmin(totals))


def _rep_window() -> int:
    return max(1, round(WINDOW_SHARE * REP_SAMPLES))


def skeleton_animation(poses: PoseSeries, start_s: float, end_s: float) -> SkeletonAnimation:
    """The landmarks between two times at ANIMATION_FPS (the nearest frame to each tick), scaled
    into a unit square that holds the whole stretch; unseen landmarks NaN."""
    ticks = np.arange(start_s, end_s + 1e-9, 1 / ANIMATION_FPS)
    nearest = np.clip(np.searchsorted(poses.t_s, ticks), 0, len(poses) - 1)
    seen = poses.visibility[nearest] >= MIN_VISIBILITY
    points = np.where(seen[..., None], poses.pixels[nearest], np.nan)
    if not np.isfinite(points).any():
        return SkeletonAnimation(ANIMATION_FPS, np.full((len(ticks), 33, 2), np.nan))
    low = np.nanmin(points, axis=(0, 1))
    size = np.nanmax(points, axis=(0, 1)) - low
    scale = max(float(size.max()), 1e-9)
    # Centred in the square along the shorter side, so that the body keeps its proportions.
    normalised = (points - low + (scale - size) / 2) / scale
    return SkeletonAnimation(ANIMATION_FPS, np.round(normalised, 3))


def thresholds_from_reference(template: ReferenceTemplate) -> tuple[float, float]:
    """(target angle, expected range of motion), in degrees, for the patient's counter
    (`target_deg`, `expected_rom_deg`): the peak and the range the therapist showed."""
    return template.peak_deg, template.rom_deg


def played_repeatedly(
    template: ReferenceTemplate, fps: float, repetitions: int
) -> dict[str, np.ndarray]:
    """The representative repetition at its median duration, `repetitions` times in a row at
    `fps`: the reference to synchronise a patient with."""
    frames = max(2, round(template.rep_duration_s * fps))
    one = {
        name: _resampled(values, frames)
        for name, values in template.repetition(template.representative).items()
    }
    return {name: np.tile(values, repetitions) for name, values in one.items()}


# --- Scoring a repetition ---------------------------------------------------------------------
@dataclass(frozen=True)
class RepetitionSimilarity:
    """score: 0-100 (score_from_error of the motion-weighted mean aligned error);
    deviating_joints: the patient's joints whose mean aligned error exceeds DEVIATION_DEG, worst
    first; per_joint_deg: each compared joint's mean aligned error in degrees."""

    score: float
    deviating_joints: list[str]
    per_joint_deg: dict[str, float]


def score_repetition(
    template: ReferenceTemplate, trajectories: Trajectories, side: str
) -> RepetitionSimilarity:
    """A patient's repetition (joint trajectories over it, any length) against the nearest of the
    reference's repetitions. `side` is the side the patient performs with ("left", "right" or
    "both", as prescribed): against a template done with the other side, left and right are
    swapped, and joints are named as the patient's. The exercise's own joint must be seen in both
    (on `side`); other joints seen in only one are left out."""
    patient = {n: _resampled(values) for n, values in trajectories.items() if n in JOINT_NAMES}
    own = _own_joints(template.joint, side)
    references = [template.repetition(index) for index in range(template.count)]
    if _needs_mirroring(template.side, side):
        references = [_mirrored(reference) for reference in references]
    alignments = [_align(reference, patient, _rep_window(), own) for reference in references]
    seen = [alignment for alignment in alignments if alignment is not None]
    if not seen:
        raise ValueError(
            f"the {' or '.join(own)} was not seen through both the reference and the repetition"
        )
    best = min(seen, key=lambda alignment: alignment.error_deg)
    errors = best.per_joint_deg
    return RepetitionSimilarity(
        score=round(score_from_error(best.error_deg, HALF_SCORE_DEG), 1),
        deviating_joints=sorted(
            (n for n in errors if errors[n] > DEVIATION_DEG), key=lambda n: -errors[n]
        ),
        per_joint_deg=errors,
    )


def _own_joints(joint: str, side: str) -> list[str]:
    """The exercise's own joint on the side performed (either side for "both"); none required
    when it is not among the compared joints (an ankle exercise)."""
    if joint not in JOINTS:
        return []
    sides = SIDES if side == "both" else (side,)
    return [f"{each} {joint}" for each in sides]


# --- Synchronisation of two people ------------------------------------------------------------
@dataclass(frozen=True)
class Synchronisation:
    """score: 0-100, score_from_error of the aligned error (HALF_SCORE_DEG) times that of the mean
    timing offset while moving (HALF_SCORE_LAG_S), over 100; lag_s: the median delay of the second
    person behind the first while the first moves (negative: ahead); path: the warping path as
    (first's frame, second's frame) index pairs."""

    score: float
    lag_s: float
    path: list[tuple[int, int]]


def synchronisation(
    a: Trajectories, b: Trajectories, fps: float, joints: Sequence[str] | None = None
) -> Synchronisation:
    """How well two people move together: trajectories on one time base at `fps` (two people in
    one video, or a person and `played_repeatedly`). Compared over `joints`; by default the joints
    both show most of the time that move at least MOVING_DEG in either. Offsets are looked for
    within MAX_LAG_S; in a repeated movement a whole repetition behind is in step."""
    names = list(joints) if joints is not None else _moving_joints(a, b)
    if not names:
        raise ValueError("no joint seen in both moves")
    if missing := set(names) - (set(a) & set(b)):
        raise ValueError(f"not in both trajectories: {sorted(missing)}")
    start, stop = _common_span(a, b, names)
    if stop - start < 2:
        raise ValueError("the two people are never seen at the same time")
    first, seen_a = _bridged(a, names, start, stop)
    second, seen_b = _bridged(b, names, start, stop)
    path = warping_path(first, second, round(MAX_LAG_S * fps))
    i, j = np.array(path).T
    both_seen = seen_a[i] & seen_b[j]
    error = float(np.abs(first[i] - second[j])[both_seen].mean()) if both_seen.any() else math.inf
    # At rest any pairing fits: timing shows only while the first person moves.
    moving = _moving_frames(first, fps)[i]
    lags_s = ((j - i) / fps)[moving] if moving.any() else (j - i) / fps
    score = score_from_error(error, HALF_SCORE_DEG) * score_from_error(
        float(np.abs(lags_s).mean()), HALF_SCORE_LAG_S
    )
    return Synchronisation(
        score=round(score / 100, 1),
        lag_s=round(float(np.median(lags_s)), 3),
        path=[(x + start, y + start) for x, y in path],
    )


def _moving_joints(a: Trajectories, b: Trajectories) -> list[str]:
    def seen(values: np.ndarray) -> bool:
        return bool(np.isfinite(values).mean() >= MIN_SEEN_SHARE)

    def moves(values: np.ndarray) -> bool:
        low, high = np.nanpercentile(values, [5, 95])
        return bool(high - low >= MOVING_DEG)

    return [
        n
        for n in JOINT_NAMES
        if n in a and n in b and seen(a[n]) and seen(b[n]) and (moves(a[n]) or moves(b[n]))
    ]


def _moving_frames(trajectories: np.ndarray, fps: float) -> np.ndarray:
    """(T,) True where some joint of (T, J) turns faster than MOVING_DPS."""
    speed_dps = np.abs(np.gradient(trajectories, axis=0)) * fps
    return np.asarray(speed_dps.max(axis=1) >= MOVING_DPS)


def _common_span(a: Trajectories, b: Trajectories, names: Sequence[str]) -> tuple[int, int]:
    """[start, stop): from the first frame where both show every joint to the last."""
    length = min(len(a[names[0]]), len(b[names[0]]))
    seen = np.ones(length, dtype=bool)
    for name in names:
        seen &= np.isfinite(a[name][:length]) & np.isfinite(b[name][:length])
    frames = np.flatnonzero(seen)
    return (int(frames[0]), int(frames[-1]) + 1) if len(frames) else (0, 0)


def _bridged(
    trajectories: Trajectories, names: Sequence[str], start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """(T, J) the joints over [start, stop) with every gap bridged (DTW needs numbers), and (T,)
    True where all were seen: bridged frames steer the alignment but do not count as error."""
    columns = [np.asarray(trajectories[n], float)[start:stop] for n in names]
    seen = np.all([np.isfinite(c) for c in columns], axis=0)
    filled = [fill_short_gaps(c, len(c)) for c in columns]
    return np.column_stack(filled), seen
