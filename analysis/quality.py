"""How far a repetition's measured angle can be trusted: a grade (good / fair / poor) and why.

A 2D clinical angle from BlazePose is usually within 6-9 deg of a human annotation, but one in ten
is 20-40 deg off, and the large errors follow three conditions that can be measured in every frame:
- the angle's landmarks were guessed rather than seen (low BlazePose visibility);
- the limb moved in a plane turned away from the image plane (the camera sees the angle
  foreshortened; knee errors: 7 deg within 30 deg of the image plane, 10 deg at 30-60, 22 beyond);
- the person was small in the picture (knee errors: 16 deg with segments under 40 px, 9 over 160).

`quality_measures` takes these per frame (no temporal operation: the live tracker calls it on one
frame at a time), for both sides; `grade_repetition` judges one repetition's frames.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from analysis.exercises import ExerciseDefinition, JointAngle, Laterality
from analysis.kinematics import MIN_VISIBILITY, SIDES, PoseSeries
from analysis.landmarks import Landmark

SEEN_PREFIX = "quality_seen_"
# Seen share of the repetition's frames. Guessed landmarks are far worse than seen ones (on the
# bench's photos 39 deg mean error against 10), so a repetition guessed in half its frames or more
# likely has its turning point guessed; a few guessed frames (a hand passing the knee) barely move
# a range that comes from many seen frames.
GOOD_SEEN_SHARE = 0.9
POOR_SEEN_SHARE = 0.5
# Median tilt of the limb's plane out of the image plane, in degrees: the measured knee errors are
# 7 deg up to 30 deg of tilt (the camera's intended view), 10 deg up to 60 and 22 deg beyond. (The
# bench cannot show this: its reference, a 2D annotation, is foreshortened like the landmarks.)
GOOD_OBLIQUITY_DEG = 30.0
POOR_OBLIQUITY_DEG = 60.0
# Median length of the angle's shorter segment in image pixels. Under 40 px knee errors average
# 16 deg, about twice the error of a large person (9 deg over 160 px). On the annotated photos of
# bench/angle_accuracy.py, seen angles with a shorter segment of 60-80 px were as close to the
# annotation as those over 80 px (mean error 6 deg against 5), and those of 40-60 px twice as far
# (10 deg). 60 px is also about a forearm in a full-body view scaled to 640x480, as the live page
# sends it.
GOOD_SEGMENT_PX = 60.0
POOR_SEGMENT_PX = 40.0
# Below this bend (the smaller of the three-point angle and its supplement) the three points are
# nearly on one line and do not fix a plane: 3 cm of world-landmark noise across 40 cm segments
# turns the plane of a 30 deg bend by about 16 deg (half an obliquity band), of a 20 deg bend by
# over 20. A nearly straight limb is foreshortened by its segments pointing towards or away from
# the camera instead: their tilt out of the image plane stands in.
MIN_BEND_FOR_PLANE_DEG = 30.0


class Grade(StrEnum):
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"


_RANK = {Grade.GOOD: 0, Grade.FAIR: 1, Grade.POOR: 2}


@dataclass(frozen=True)
class Quality:
    grade: Grade
    reasons: tuple[str, ...]  # what pulled the grade down, for a therapist; empty for good


def quality_measures(poses: PoseSeries, exercise: ExerciseDefinition) -> dict[str, np.ndarray]:
    """Per-frame measures, each (T,), for both sides, NaN where not measurable:
    quality_seen_<side> (1.0 when the angle's three landmarks are all seen, else 0.0),
    quality_obliquity_deg_<side> (tilt of the limb out of the image plane) and
    quality_segment_px_<side> (the shorter of the angle's two segments in pixels)."""
    measures: dict[str, np.ndarray] = {}
    for side in SIDES:
        indices = exercise.angle.landmarks(side)
        measures[f"{SEEN_PREFIX}{side}"] = _seen(poses.visibility, indices)
        measures[f"quality_obliquity_deg_{side}"] = _obliquity_deg(poses.world, indices)
        measures[f"quality_segment_px_{side}"] = _shorter_segment_px(poses.pixels, indices)
    return measures


def _seen(visibility: np.ndarray, indices: tuple[Landmark, ...]) -> np.ndarray:
    values = visibility[:, list(indices)]
    seen = (values >= MIN_VISIBILITY).all(axis=1).astype(np.float64)
    return np.where(np.isnan(values).any(axis=1), np.nan, seen)


def _obliquity_deg(world: np.ndarray, indices: tuple[Landmark, ...]) -> np.ndarray:
    """Tilt out of the image plane (0: in it, 90: seen edge-on or end-on) of the plane through the
    angle's three world points, or of its more tilted segment where the limb is nearly straight."""
    proximal, vertex, distal = (world[:, index] for index in indices)
    first, second = proximal - vertex, distal - vertex
    normal = np.cross(first, second)
    normal_size = np.linalg.norm(normal, axis=-1)
    lengths = np.linalg.norm(first, axis=-1) * np.linalg.norm(second, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sine = normal_size / lengths
        plane_tilt = np.degrees(np.arccos(np.clip(np.abs(normal[:, 2]) / normal_size, 0.0, 1.0)))
        segment_tilt = np.maximum(_segment_tilt_deg(first), _segment_tilt_deg(second))
    bent = sine >= np.sin(np.radians(MIN_BEND_FOR_PLANE_DEG))  # NaN compares False
    return np.where(bent, plane_tilt, segment_tilt)


def _segment_tilt_deg(segment: np.ndarray) -> np.ndarray:
    """(T,) how far a (T, 3) world segment points out of the image plane, in degrees."""
    return np.degrees(
        np.arcsin(np.clip(np.abs(segment[:, 2]) / np.linalg.norm(segment, axis=-1), 0, 1))
    )


def _shorter_segment_px(pixels: np.ndarray, indices: tuple[Landmark, ...]) -> np.ndarray:
    proximal, vertex, distal = (pixels[:, index] for index in indices)
    return np.minimum(
        np.linalg.norm(proximal - vertex, axis=-1), np.linalg.norm(distal - vertex, axis=-1)
    )  # NaN when either is


def grade_repetition(measures: Mapping[str, np.ndarray], angle: JointAngle, side: str) -> Quality:
    """The grade of one repetition of `angle` on one side ("left" / "right") from its frames'
    measures (name -> (n,) array, as quality_measures gives them; other keys are ignored). The
    worst of the three conditions sets the grade; a condition with no measured frame makes it fair
    at best."""
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', not {side!r}")
    judged = [
        _judge_seen(_values(measures, "seen", side), angle.vertex),
        _judge_obliquity(_values(measures, "obliquity_deg", side)),
        _judge_size(_values(measures, "segment_px", side)),
    ]
    grade = max((grade for grade, _ in judged), key=_RANK.__getitem__)
    return Quality(grade, tuple(reason for _, reason in judged if reason))


def _judge_seen(seen: np.ndarray, joint: str) -> tuple[Grade, str]:
    if seen.size == 0:
        return Grade.FAIR, f"whether the {joint} was seen was not measured"
    # A frame without a pose (NaN) did not see the joint either.
    share = float(np.nan_to_num(seen, nan=0.0).mean())
    if share >= GOOD_SEEN_SHARE:
        return Grade.GOOD, ""
    grade = Grade.POOR if share < POOR_SEEN_SHARE else Grade.FAIR
    return grade, f"{joint} hidden in {100 * (1 - share):.0f}% of the frames"


def _judge_obliquity(obliquity: np.ndarray) -> tuple[Grade, str]:
    if not np.isfinite(obliquity).any():
        return Grade.FAIR, "limb plane not measured"
    median = float(np.nanmedian(obliquity))
    if median <= GOOD_OBLIQUITY_DEG:
        return Grade.GOOD, ""
    grade = Grade.POOR if median > POOR_OBLIQUITY_DEG else Grade.FAIR
    return grade, f"limb plane {median:.0f}° from the camera's view"


def _judge_size(segment_px: np.ndarray) -> tuple[Grade, str]:
    if not np.isfinite(segment_px).any():
        return Grade.FAIR, "size in the picture not measured"
    median = float(np.nanmedian(segment_px))
    if median >= GOOD_SEGMENT_PX:
        return Grade.GOOD, ""
    grade = Grade.POOR if median < POOR_SEGMENT_PX else Grade.FAIR
    return grade, f"small in the picture: limb segment {median:.0f} px"


def _values(measures: Mapping[str, np.ndarray], name: str, side: str) -> np.ndarray:
    values = measures.get(f"quality_{name}_{side}")
    return np.array([]) if values is None else np.asarray(values, dtype=np.float64).ravel()


# --- Values the body cannot produce ------------------------------------------------------------
# Beyond the joint's normal range (AAOS active ROM) an angle may be a flexible patient or a
# measurement; this far beyond, it is a measurement error (a limb guessed folded, sides swapped).
BEYOND_NORMAL_IMPLAUSIBLE_DEG = 15.0
# On an exercise for one side, the other limb moving this many times as far means the measured
# limb is probably not the one that exercised (a mirrored picture, the wrong side prescribed).
OTHER_SIDE_RATIO = 1.5


def plausibility(
    exercise: ExerciseDefinition,
    *,
    peak_deg: float,
    peak_velocity_dps: float,
    rom_deg: float,
    other_rom_deg: float | None,
) -> list[tuple[Grade, str]]:
    """What in a repetition's values the body cannot produce (poor) or should be checked (fair):
    its peak beyond the joint's range, its speed, the other side doing the exercise."""
    found = [*_peak_beyond_range(exercise, peak_deg)]
    limit = exercise.thresholds.max_velocity_dps
    if peak_velocity_dps > limit:
        found.append(
            (Grade.POOR, f"implausible speed: {peak_velocity_dps:.0f}°/s (a glitch, not movement)")
        )
    if (
        exercise.laterality is Laterality.ONE_SIDE
        and other_rom_deg is not None
        and other_rom_deg > OTHER_SIDE_RATIO * max(rom_deg, 1.0)
    ):
        found.append(
            (Grade.POOR, f"the other side moved more ({other_rom_deg:.0f}° against {rom_deg:.0f}°)")
        )
    return found


def _peak_beyond_range(exercise: ExerciseDefinition, peak_deg: float) -> list[tuple[Grade, str]]:
    angle, normal_end = exercise.angle, exercise.normal_end_deg
    beyond = -exercise.thresholds.shortfall_deg(normal_end, peak_deg)  # past the normal limit
    limit = f"{'≤' if exercise.thresholds.direction > 0 else '≥'} {normal_end:.0f}°"
    if beyond <= 0:
        return []
    if beyond > BEYOND_NORMAL_IMPLAUSIBLE_DEG:
        return [
            (Grade.POOR, f"implausible angle: {peak_deg:.0f}° is beyond the {angle.joint}'s range")
        ]
    return [(Grade.FAIR, f"{peak_deg:.0f}° is beyond the normal {angle.joint} range ({limit})")]


def worst(quality: Quality, more: list[tuple[Grade, str]]) -> Quality:
    """`quality` lowered by further findings, their reasons added."""
    grade = max([quality.grade, *(grade for grade, _ in more)], key=_RANK.__getitem__)
    return Quality(grade, quality.reasons + tuple(reason for _, reason in more))
