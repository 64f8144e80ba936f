"""Form faults measured from landmarks: per-frame measures, judged over each repetition.

Only faults the camera can see are checked; an exercise's other faults (knee valgus from a side
view, hands pushing on a chair, ...) are left to the therapist. The limits are deliberately
generous: a flag should mean "look at this", not "normal movement".
"""

from collections.abc import Mapping

import numpy as np

from analysis.exercises import CameraView, ExerciseDefinition, Plane
from analysis.kinematics import PoseSeries, three_point_angle_deg, visible
from analysis.landmarks import Landmark, sided_landmark

# Trunk angle from vertical (deg). A squat to 90 deg knee flexion normally brings the trunk 30-45
# deg forward; sitting down and standing up need up to about 50.
TRUNK_LEAN_SAGITTAL_DEG = 55.0
TRUNK_LEAN_FRONTAL_DEG = 15.0
# Shoulder hiking: the shoulder-to-ear distance shrinks by more than this share of its value at the
# start of the repetition (some elevation comes with any raise above shoulder height).
SHOULDER_HIKING_SHARE = 0.35
ELBOW_BEND_DEG = 30.0  # elbow flexion during a straight-arm raise
# Faults that mean "the repetition's peak stayed well short of the target".
TARGET_SHORTFALL_CODES = frozenset(
    {
        "shallow_depth",
        "partial_depth",
        "incomplete_arm_raise",
        "incomplete_lockout",
        "extension_lag",
    }
)
TARGET_SHORTFALL_DEG = 15.0


def form_measures(poses: PoseSeries, side: str) -> dict[str, np.ndarray]:
    """Per-frame measures (each (T,), NaN where not visible) that the fault checks read."""
    return {
        "trunk_from_vertical_deg": _trunk_from_vertical_deg(poses, side),
        "shoulder_to_ear_px": _shoulder_to_ear_px(poses, side),
        "elbow_flexion_deg": _elbow_flexion_deg(poses, side),
    }


def form_flags(
    exercise: ExerciseDefinition,
    measures: Mapping[str, np.ndarray],
    *,
    peak_deg: float,
    target_deg: float,
) -> list[str]:
    """Fault codes of the exercise seen during one repetition.

    `measures` holds the repetition's frames only; `peak_deg` is its furthest angle towards the
    peak threshold (max for upward exercises, min for downward ones).
    """
    return [
        fault.code
        for fault in exercise.form_faults
        if _fault_seen(fault.code, exercise, measures, peak_deg=peak_deg, target_deg=target_deg)
    ]


def _fault_seen(
    code: str,
    exercise: ExerciseDefinition,
    measures: Mapping[str, np.ndarray],
    *,
    peak_deg: float,
    target_deg: float,
) -> bool:
    none = np.array([], dtype=np.float64)  # a measure not taken (e.g. a bare angle signal)
    if code == "trunk_lean":
        return _trunk_leans(exercise, measures.get("trunk_from_vertical_deg", none))
    if code == "shoulder_hiking":
        return _shoulder_hikes(measures.get("shoulder_to_ear_px", none))
    if code == "elbow_bend":
        return _max(measures.get("elbow_flexion_deg", none)) > ELBOW_BEND_DEG
    if code in TARGET_SHORTFALL_CODES:
        return exercise.thresholds.shortfall_deg(target_deg, peak_deg) > TARGET_SHORTFALL_DEG
    return False  # not visible to the camera: left to the therapist


def _trunk_leans(exercise: ExerciseDefinition, trunk_deg: np.ndarray) -> bool:
    frontal = exercise.plane is Plane.FRONTAL or exercise.camera_view is CameraView.FRONT
    limit = TRUNK_LEAN_FRONTAL_DEG if frontal else TRUNK_LEAN_SAGITTAL_DEG
    return _max(trunk_deg) > limit


def _shoulder_hikes(shoulder_to_ear: np.ndarray) -> bool:
    seen = shoulder_to_ear[np.isfinite(shoulder_to_ear)]
    if len(seen) < 2 or seen[0] <= 0:
        return False
    return bool((seen[0] - seen.min()) / seen[0] > SHOULDER_HIKING_SHARE)


def _max(values: np.ndarray) -> float:
    return float(np.nanmax(values)) if np.isfinite(values).any() else float("-inf")


def _trunk_from_vertical_deg(poses: PoseSeries, side: str) -> np.ndarray:
    hip, shoulder = sided_landmark("hip", side), sided_landmark("shoulder", side)
    trunk = poses.pixels[:, shoulder] - poses.pixels[:, hip]
    # Image y points down, so "up" is -y.
    with np.errstate(invalid="ignore"):
        angle = np.degrees(np.arctan2(np.abs(trunk[:, 0]), -trunk[:, 1]))
    return np.where(visible(poses, hip, shoulder), angle, np.nan)


def _shoulder_to_ear_px(poses: PoseSeries, side: str) -> np.ndarray:
    shoulder = sided_landmark("shoulder", side)
    ear = Landmark.LEFT_EAR if side == "left" else Landmark.RIGHT_EAR
    distance = poses.pixels[:, shoulder, 1] - poses.pixels[:, ear, 1]
    return np.where(visible(poses, shoulder, ear), distance, np.nan)


def _elbow_flexion_deg(poses: PoseSeries, side: str) -> np.ndarray:
    points = [sided_landmark(point, side) for point in ("shoulder", "elbow", "wrist")]
    raw = three_point_angle_deg(*(poses.pixels[:, point] for point in points))
    return np.where(visible(poses, *points), 180.0 - raw, np.nan)
