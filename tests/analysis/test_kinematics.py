"""Joint angles on synthetic skeletons with exact answers, and the per-frame form measures."""

import numpy as np
import pytest

from analysis.exercises import BY_SLUG, AngleSpace
from analysis.form import form_flags, form_measures
from analysis.kinematics import PoseSeries, choose_side, joint_angle_deg, three_point_angle_deg
from analysis.landmarks import Landmark


def _pose(points: dict[Landmark, tuple[float, float, float]], *, frames: int = 1) -> PoseSeries:
    """A skeleton with the given landmarks (pixels x, y and world depth), visible, elsewhere NaN."""
    pixels = np.full((frames, 33, 2), np.nan)
    world = np.full((frames, 33, 3), np.nan)
    visibility = np.zeros((frames, 33))
    for landmark, (x, y, z) in points.items():
        pixels[:, landmark] = (x, y)
        world[:, landmark] = (x / 100, y / 100, z)
        visibility[:, landmark] = 1.0
    return PoseSeries(np.arange(frames) / 30.0, pixels, world, visibility)


def _standing_leg(side: str, knee_deg: float, x_sign: float = 1.0) -> dict[Landmark, tuple]:
    """Hip above the knee; the shank bent forward (x_sign) by knee_deg of flexion."""
    bend = np.radians(knee_deg)
    hip, knee = (0.0, 0.0, 0.0), (0.0, 100.0, 0.0)
    ankle = (x_sign * -100 * np.sin(bend), 100 + 100 * np.cos(bend), 0.0)
    return {
        Landmark[f"{side.upper()}_HIP"]: hip,
        Landmark[f"{side.upper()}_KNEE"]: knee,
        Landmark[f"{side.upper()}_ANKLE"]: ankle,
    }


def test_a_right_angle_reads_90_degrees():
    angle = three_point_angle_deg(np.array([1.0, 0.0]), np.array([0.0, 0.0]), np.array([0.0, 1.0]))
    assert angle == pytest.approx(90.0, abs=1e-9)
    straight = three_point_angle_deg(np.array([0, -1.0, 0]), np.zeros(3), np.array([0, 2.0, 0]))
    assert straight == pytest.approx(180.0, abs=1e-9)


def test_a_zero_length_segment_gives_a_gap_not_a_number():
    assert np.isnan(three_point_angle_deg(np.zeros(2), np.zeros(2), np.array([1.0, 0.0])))


@pytest.mark.parametrize("flexion", [0.0, 30.0, 90.0, 120.0])
def test_knee_flexion_is_clinical_and_reads_the_same_in_2d_and_3d(flexion):
    poses = _pose(_standing_leg("left", flexion))
    knee = BY_SLUG["squat"].angle
    for space in AngleSpace:
        assert joint_angle_deg(poses, knee, "left", space)[0] == pytest.approx(flexion, abs=1e-9)


def test_mirror_images_read_the_same_on_both_sides():
    left = _pose(_standing_leg("left", 70.0, x_sign=1.0))
    right = _pose(_standing_leg("right", 70.0, x_sign=-1.0))
    knee = BY_SLUG["squat"].angle
    assert joint_angle_deg(left, knee, "left", AngleSpace.IMAGE_2D)[0] == pytest.approx(
        joint_angle_deg(right, knee, "right", AngleSpace.IMAGE_2D)[0], abs=1e-9
    )


def test_rotation_and_scale_do_not_change_3d_angles():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(3, 3))
    before = three_point_angle_deg(*points)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # a random rotation (or reflection)
    moved = 2.7 * points @ q.T + np.array([5.0, -1.0, 0.3])
    assert three_point_angle_deg(*moved) == pytest.approx(before, abs=1e-9)


def test_shoulder_flexion_is_zero_with_the_arm_at_the_side_and_90_held_forward():
    shoulder = BY_SLUG["shoulder_flexion"].angle
    at_side = {
        Landmark.RIGHT_HIP: (0.0, 200.0, 0.0),
        Landmark.RIGHT_SHOULDER: (0.0, 0.0, 0.0),
        Landmark.RIGHT_ELBOW: (0.0, 100.0, 0.0),
    }
    forward = {**at_side, Landmark.RIGHT_ELBOW: (100.0, 0.0, 0.0)}
    for pose, expected in ((at_side, 0.0), (forward, 90.0)):
        angle = joint_angle_deg(_pose(pose), shoulder, "right", AngleSpace.IMAGE_2D)[0]
        assert angle == pytest.approx(expected, abs=1e-9)


def test_a_landmark_below_the_visibility_threshold_is_a_gap():
    poses = _pose(_standing_leg("left", 45.0), frames=3)
    poses.visibility[1, Landmark.LEFT_ANKLE] = 0.3
    angles = joint_angle_deg(poses, BY_SLUG["squat"].angle, "left", AngleSpace.IMAGE_2D)
    assert np.isnan(angles[1]) and angles[0] == pytest.approx(45.0)


def test_auto_side_picks_the_side_facing_the_camera_in_a_side_view():
    points = {**_standing_leg("left", 10.0), **_standing_leg("right", 10.0)}
    poses = _pose(points, frames=4)
    poses.visibility[:, [Landmark.LEFT_HIP, Landmark.LEFT_KNEE, Landmark.LEFT_ANKLE]] = 0.4
    assert choose_side(poses, BY_SLUG["squat"]) == "right"


def test_auto_side_picks_the_moving_arm_in_a_front_view():
    frames = 30
    poses = _pose(
        {
            Landmark.LEFT_HIP: (100.0, 200.0, 0.0),
            Landmark.LEFT_SHOULDER: (100.0, 0.0, 0.0),
            Landmark.LEFT_ELBOW: (100.0, 100.0, 0.0),
            Landmark.RIGHT_HIP: (0.0, 200.0, 0.0),
            Landmark.RIGHT_SHOULDER: (0.0, 0.0, 0.0),
            Landmark.RIGHT_ELBOW: (0.0, 100.0, 0.0),
        },
        frames=frames,
    )
    raise_deg = np.radians(np.linspace(0, 150, frames))
    poses.pixels[:, Landmark.LEFT_ELBOW] = np.stack(
        [100 + 100 * np.sin(raise_deg), 100 * np.cos(raise_deg)], axis=1
    )
    assert choose_side(poses, BY_SLUG["shoulder_abduction"]) == "left"


def _trunk(lean_deg: float, ear_above_shoulder: float = 40.0) -> dict[Landmark, tuple]:
    lean = np.radians(lean_deg)
    shoulder = (200 * np.sin(lean), -200 * np.cos(lean), 0.0)
    return {
        Landmark.RIGHT_HIP: (0.0, 0.0, 0.0),
        Landmark.RIGHT_SHOULDER: shoulder,
        Landmark.RIGHT_EAR: (shoulder[0], shoulder[1] - ear_above_shoulder, 0.0),
        Landmark.RIGHT_ELBOW: (shoulder[0], shoulder[1] + 100, 0.0),
        Landmark.RIGHT_WRIST: (shoulder[0], shoulder[1] + 200, 0.0),
    }


def _measures(poses: list[PoseSeries]) -> dict[str, np.ndarray]:
    per_frame = [form_measures(pose, "right") for pose in poses]
    return {name: np.concatenate([m[name] for m in per_frame]) for name in per_frame[0]}


def test_trunk_lean_is_flagged_for_a_squat_only_beyond_its_limit():
    squat = BY_SLUG["squat"]
    upright = _measures([_pose(_trunk(0)), _pose(_trunk(40))])
    leaning = _measures([_pose(_trunk(0)), _pose(_trunk(65))])
    assert upright["trunk_from_vertical_deg"] == pytest.approx([0.0, 40.0])
    assert "trunk_lean" not in form_flags(squat, upright, peak_deg=90, target_deg=90)
    assert "trunk_lean" in form_flags(squat, leaning, peak_deg=90, target_deg=90)
    sit_to_stand = BY_SLUG["sit_to_stand"]
    assert "trunk_lean" in form_flags(sit_to_stand, leaning, peak_deg=90, target_deg=90)


def test_shoulder_hiking_is_flagged_when_the_shoulder_rises_towards_the_ear():
    raise_ = BY_SLUG["shoulder_abduction"]
    steady = _measures([_pose(_trunk(0, 40.0)), _pose(_trunk(0, 35.0))])
    hiked = _measures([_pose(_trunk(0, 40.0)), _pose(_trunk(0, 15.0))])
    assert "shoulder_hiking" not in form_flags(raise_, steady, peak_deg=160, target_deg=160)
    assert "shoulder_hiking" in form_flags(raise_, hiked, peak_deg=160, target_deg=160)


def test_a_peak_well_short_of_the_target_is_flagged_in_either_direction():
    assert "shallow_depth" in form_flags(BY_SLUG["squat"], {}, peak_deg=60, target_deg=90)
    assert "shallow_depth" not in form_flags(BY_SLUG["squat"], {}, peak_deg=80, target_deg=90)
    extension = BY_SLUG["seated_knee_extension"]
    assert "extension_lag" in form_flags(extension, {}, peak_deg=25, target_deg=0)
    assert "extension_lag" not in form_flags(extension, {}, peak_deg=5, target_deg=0)


def test_a_shoulder_angle_is_measured_from_the_trunk_line_when_the_hip_is_out_of_the_picture():
    # Facing the camera, waist up: shoulders level 100 px apart, the right arm raised 60 deg out
    # to the side; the hips are below the picture (not visible).
    pixels = np.zeros((1, 33, 2))
    pixels[0, Landmark.RIGHT_SHOULDER] = (300, 200)
    pixels[0, Landmark.LEFT_SHOULDER] = (400, 200)
    raise_rad = np.radians(60)
    pixels[0, Landmark.RIGHT_ELBOW] = (300 - 80 * np.sin(raise_rad), 200 + 80 * np.cos(raise_rad))
    pixels[0, Landmark.RIGHT_HIP] = (310, 700)  # a guess far outside: not visible
    visibility = np.full((1, 33), 0.9)
    visibility[0, [Landmark.RIGHT_HIP, Landmark.LEFT_HIP]] = 0.1
    poses = PoseSeries(np.zeros(1), pixels, np.zeros((1, 33, 3)), visibility)
    exercise = BY_SLUG["shoulder_abduction"]
    angle = joint_angle_deg(poses, exercise.angle, "right", AngleSpace.IMAGE_2D)
    assert angle[0] == pytest.approx(60, abs=0.01)
    # Side-on, the shoulders overlap: the trunk line is unknown, and so is the angle.
    pixels[0, Landmark.LEFT_SHOULDER] = (305, 200)
    angle = joint_angle_deg(poses, exercise.angle, "right", AngleSpace.IMAGE_2D)
    assert np.isnan(angle[0])
    # A knee angle has no stand-in for a hidden hip.
    assert np.isnan(joint_angle_deg(poses, BY_SLUG["squat"].angle, "right", AngleSpace.IMAGE_2D))[0]
