"""Joint angles from landmarks, in the clinical convention, with gaps where the body is not seen.

Landmark arrays (one pose per frame, NaN rows for frames without a pose):
    pixels: (T, 33, 2) image positions in pixels (not normalised: a 640x480 image would otherwise
            squash angles),
    world:  (T, 33, 3) metres,
    visibility: (T, 33) in [0, 1].
"""

from dataclasses import dataclass

import numpy as np

from analysis.exercises import AngleSpace, CameraView, ExerciseDefinition, JointAngle, Plane
from analysis.landmarks import Landmark, sided_landmark

# Below this BlazePose visibility a landmark is a guess (often an occluded limb), not a measurement.
MIN_VISIBILITY = 0.5
SIDES = ("left", "right")


def single_side(side: str) -> str:
    """The side that stands for a "both" measurement where one side is needed (form measures, the
    limb the page colours)."""
    return "right" if side == "both" else side


@dataclass(frozen=True)
class PoseSeries:
    """Landmarks of one person over T frames, at times `t_s` (T,) in seconds."""

    t_s: np.ndarray
    pixels: np.ndarray
    world: np.ndarray
    visibility: np.ndarray

    def __len__(self) -> int:
        return len(self.t_s)

    @classmethod
    def empty_frames(cls, t_s: np.ndarray) -> "PoseSeries":
        frames = len(t_s)
        return cls(
            t_s=np.asarray(t_s, dtype=np.float64),
            pixels=np.full((frames, 33, 2), np.nan),
            world=np.full((frames, 33, 3), np.nan),
            visibility=np.zeros((frames, 33)),
        )


def three_point_angle_deg(
    proximal: np.ndarray, vertex: np.ndarray, distal: np.ndarray
) -> np.ndarray:
    """Angle at `vertex` between the segments to `proximal` and `distal`, in [0, 180] degrees.

    Points are (..., D) arrays with D = 2 or 3; the result has shape (...). A zero-length segment
    gives NaN rather than an arbitrary angle.
    """
    a = np.asarray(proximal, dtype=np.float64) - vertex
    b = np.asarray(distal, dtype=np.float64) - vertex
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.sum(a * b, axis=-1) / norms
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return np.where(norms > 1e-12, angle, np.nan)


def joint_angle_deg(
    poses: PoseSeries, angle: JointAngle, side: str, space: AngleSpace
) -> np.ndarray:
    """The clinical joint angle (T,) on one side; NaN where any of its landmarks is not visible
    (except a hip out of view at the shoulder, see _trunk_line_stand_in)."""
    indices = list(angle.landmarks(side))
    points = poses.pixels if space is AngleSpace.IMAGE_2D else poses.world
    proximal = points[:, indices[0]]
    seen = visible(poses, *indices)
    if angle.vertex == "shoulder" and angle.proximal == "hip":
        stand_in, usable = _trunk_line_stand_in(poses, points, side)
        replace = ~seen & usable
        proximal = np.where(replace[:, None], stand_in, proximal)
        seen = seen | replace
    raw = three_point_angle_deg(proximal, points[:, indices[1]], points[:, indices[2]])
    return np.where(seen, angle.clinical_deg(raw), np.nan)


def _trunk_line_stand_in(
    poses: PoseSeries, points: np.ndarray, side: str
) -> tuple[np.ndarray, np.ndarray]:
    """A point on the trunk line below the shoulder, for frames whose hip is out of view (a
    waist-up picture) but whose two shoulders are seen well apart (a front or back view): the
    trunk runs square to the shoulder line, downwards. ((T, D) points, (T,) usable)."""
    other = "left" if side == "right" else "right"
    shoulder, far_shoulder, elbow = (
        sided_landmark("shoulder", side),
        sided_landmark("shoulder", other),
        sided_landmark("elbow", side),
    )
    across = points[:, far_shoulder] - points[:, shoulder]
    width = np.linalg.norm(across, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = across / width
        down = np.zeros_like(across)
        down[:, 1] = 1.0  # image y and BlazePose world y both point down
        trunk = down - np.sum(down * unit, axis=-1, keepdims=True) * unit
        upper_arm = np.linalg.norm(points[:, elbow] - points[:, shoulder], axis=-1)
    # Shoulders closer than half an upper arm (a side view) leave the shoulder line undefined.
    apart = width[:, 0] >= 0.5 * upper_arm
    usable = visible(poses, shoulder, far_shoulder, elbow) & apart
    return points[:, shoulder] + trunk, usable


# The movement's plane seen this obliquely or less is measured in the image, where angles in the
# plane are exact; more obliquely, a 2D angle is foreshortened (a squat seen from the front shows a
# fraction of its knee flexion) and the world landmarks measure it better. Between the two limits
# the space chosen last is kept, so that a patient standing at about 45 deg does not flip the
# angle between two estimates from frame to frame.
IN_PLANE_MAX_DEG = 35.0
OUT_OF_PLANE_MIN_DEG = 55.0


def plane_obliquity_deg(world: np.ndarray, plane: Plane) -> np.ndarray:
    """(T,) how far the body's plane of the movement is turned away from the image plane, in
    degrees (0: seen face-on), from world landmarks (T, 33, 3); NaN without a pose.

    The body's left-right axis (shoulders and hips) lies in the frontal plane and is the normal of
    the sagittal plane. BlazePose's world z is depth, so the axis's elevation out of the image
    plane is 0 deg facing the camera and 90 deg side-on.
    """
    across = (world[:, Landmark.LEFT_SHOULDER] - world[:, Landmark.RIGHT_SHOULDER]) + (
        world[:, Landmark.LEFT_HIP] - world[:, Landmark.RIGHT_HIP]
    )
    side_on_deg = np.degrees(np.arctan2(np.abs(across[:, 2]), np.hypot(across[:, 0], across[:, 1])))
    if plane is Plane.SAGITTAL:
        return 90.0 - side_on_deg
    return side_on_deg  # frontal (and transverse, which no camera sees face-on when standing)


class AngleSpaceChooser:
    """Frame by frame, the space an exercise's angle is measured in: its own (exercise.angle_space)
    while the camera sees the movement's plane, the world landmarks when it does not."""

    def __init__(self, exercise: ExerciseDefinition) -> None:
        self.exercise = exercise
        self.space = exercise.angle_space

    def __call__(self, obliquity_deg: float) -> AngleSpace:
        if self.exercise.angle_space is AngleSpace.WORLD_3D or not np.isfinite(obliquity_deg):
            return self.space
        if obliquity_deg <= IN_PLANE_MAX_DEG:
            self.space = AngleSpace.IMAGE_2D
        elif obliquity_deg >= OUT_OF_PLANE_MIN_DEG:
            self.space = AngleSpace.WORLD_3D
        return self.space


def world_space_frames(poses: PoseSeries, exercise: ExerciseDefinition) -> np.ndarray:
    """(T,) True in the frames whose angle AngleSpaceChooser measures from the world landmarks."""
    choose = AngleSpaceChooser(exercise)
    obliquity = plane_obliquity_deg(poses.world, exercise.plane)
    return np.array([choose(float(o)) is AngleSpace.WORLD_3D for o in obliquity], dtype=bool)


def visible(poses: PoseSeries, *landmarks: Landmark) -> np.ndarray:
    """(T,) True in the frames where every one of the landmarks is seen well enough."""
    return (poses.visibility[:, list(landmarks)] >= MIN_VISIBILITY).all(axis=1)


def choose_side(poses: PoseSeries, exercise: ExerciseDefinition) -> str:
    """The side to measure when the patient did not say: the side facing the camera in a side view,
    or the side that moves in a front view (or when both are equally well seen)."""
    angle = exercise.angle
    seen = {
        side: float(np.nanmean(poses.visibility[:, list(angle.landmarks(side))])) for side in SIDES
    }
    if exercise.camera_view is CameraView.SIDE and abs(seen["left"] - seen["right"]) >= 0.1:
        return max(SIDES, key=lambda side: seen[side])
    if exercise.camera_view is CameraView.SIDE:
        # Equally visible: BlazePose's depth still tells which hip is nearer the camera.
        nearer = _mean_depth(poses, Landmark.LEFT_HIP) - _mean_depth(poses, Landmark.RIGHT_HIP)
        if np.isfinite(nearer) and abs(nearer) > 0.02:
            return "left" if nearer < 0 else "right"
    return max(SIDES, key=lambda side: _movement_deg(poses, exercise, side))


def _mean_depth(poses: PoseSeries, landmark: Landmark) -> float:
    depth = poses.world[:, landmark, 2]
    return float(np.nanmean(depth)) if np.isfinite(depth).any() else float("nan")


def _movement_deg(poses: PoseSeries, exercise: ExerciseDefinition, side: str) -> float:
    angle = joint_angle_deg(poses, exercise.angle, side, exercise.angle_space)
    if np.isfinite(angle).sum() < 2:
        return 0.0
    low, high = np.nanpercentile(angle, [5, 95])
    return float(high - low)
