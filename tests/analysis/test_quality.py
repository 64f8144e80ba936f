"""Repetition quality grades on synthetic skeletons with exact answers: each condition at, just
under and just over its limits, on both sides."""

import numpy as np
import pytest

from analysis.exercises import (
    BY_SLUG,
    ELBOW_FLEXION,
    HIP_FLEXION,
    KNEE_FLEXION,
    SHOULDER_FLEXION,
    Plane,
)
from analysis.kinematics import MIN_VISIBILITY, PoseSeries, plane_obliquity_deg
from analysis.landmarks import Landmark
from analysis.quality import (
    GOOD_OBLIQUITY_DEG,
    GOOD_SEEN_SHARE,
    GOOD_SEGMENT_PX,
    MIN_BEND_FOR_PLANE_DEG,
    POOR_OBLIQUITY_DEG,
    POOR_SEEN_SHARE,
    POOR_SEGMENT_PX,
    Grade,
    Quality,
    grade_repetition,
    quality_measures,
)

SQUAT = BY_SLUG["squat"]
KNEE = SQUAT.angle
SEGMENT_M = 0.4


def _leg(
    side: str,
    hip: np.ndarray,
    *,
    bend_deg: float,
    tilt_deg: float,
    thigh_px: float,
    shank_px: float,
):
    """A leg hanging from the world point `hip`, the knee bent by `bend_deg` in a plane tilted
    `tilt_deg` out of the image plane (about the vertical thigh), as world points (metres) and
    pixels (x, y)."""
    bend, tilt = np.radians(bend_deg), np.radians(tilt_deg)
    forward = np.array([np.cos(tilt), 0.0, np.sin(tilt)])  # in the leg's plane, across the thigh
    down = np.array([0.0, 1.0, 0.0])
    knee = hip + SEGMENT_M * down
    world = {
        "hip": hip,
        "knee": knee,
        "ankle": knee + SEGMENT_M * (np.sin(bend) * forward + np.cos(bend) * down),
    }
    pixels = {
        "hip": np.array([300.0, 300.0 - thigh_px]),
        "knee": np.array([300.0, 300.0]),
        "ankle": np.array([300.0 + shank_px * np.sin(bend), 300.0 + shank_px * np.cos(bend)]),
    }
    return {Landmark[f"{side}_{point}".upper()]: (world[point], pixels[point]) for point in world}


def _leaning_leg(side: str, *, thigh_deg: float, shank_deg: float, facing_camera: bool) -> dict:
    """A body with one leg whose thigh and lower leg lean `thigh_deg` and `shank_deg` from hanging
    straight down towards the depth (world z) in the y-z plane, which is 90 deg out of the image
    plane: the knee's three-point angle is 180 - |thigh_deg - shank_deg|."""
    body = _body(facing_camera)
    hip = body[Landmark[f"{side.upper()}_HIP"]][0]
    thigh, shank = np.radians(thigh_deg), np.radians(shank_deg)
    knee = hip + SEGMENT_M * np.array([0.0, np.cos(thigh), np.sin(thigh)])
    ankle = knee + SEGMENT_M * np.array([0.0, np.cos(shank), np.sin(shank)])
    pixels = {
        point: np.array([300.0, 300.0 + 250.0 * xyz[1]])
        for point, xyz in (("hip", hip), ("knee", knee), ("ankle", ankle))
    }
    world = {"hip": hip, "knee": knee, "ankle": ankle}
    leg = {Landmark[f"{side}_{point}".upper()]: (world[point], pixels[point]) for point in world}
    return {**body, **leg}


def _body(facing_camera: bool):
    """Shoulders and hips: across the image (facing the camera) or along the depth (side-on)."""
    across = np.array([0.15, 0.0, 0.0]) if facing_camera else np.array([0.0, 0.0, 0.15])
    points = {}
    for name, height in (("shoulder", -0.5), ("hip", 0.0)):
        centre = np.array([0.0, height, 0.0])
        points[Landmark[f"LEFT_{name.upper()}"]] = (centre + across, np.array([300.0, 300.0]))
        points[Landmark[f"RIGHT_{name.upper()}"]] = (centre - across, np.array([300.0, 300.0]))
    return points


def _poses(*frames: dict, visibility: float = 1.0) -> PoseSeries:
    """One frame per dict of landmark -> (world, pixels); other landmarks NaN and unseen. An empty
    dict is a frame without a pose."""
    count = len(frames)
    pixels = np.full((count, 33, 2), np.nan)
    world = np.full((count, 33, 3), np.nan)
    seen = np.zeros((count, 33))
    for i, points in enumerate(frames):
        for landmark, (xyz, xy) in points.items():
            world[i, landmark], pixels[i, landmark], seen[i, landmark] = xyz, xy, visibility
    return PoseSeries(np.arange(count) / 30.0, pixels, world, seen)


def _frame(side: str = "left", *, facing_camera: bool = False, **leg: float) -> dict:
    """A body (side-on unless `facing_camera`) with one leg: shape as _leg, by default bent 60 deg
    in the image plane, 100 px segments."""
    shape = {"bend_deg": 60.0, "tilt_deg": 0.0, "thigh_px": 100.0, "shank_px": 100.0, **leg}
    body = _body(facing_camera)
    hip = body[Landmark[f"{side.upper()}_HIP"]][0]
    return {**body, **_leg(side, hip, **shape)}


def _measures(side: str, *, seen=(1.0,), obliquity=(0.0,), segment=(100.0,)) -> dict:
    return {
        f"quality_seen_{side}": np.array(seen, dtype=float),
        f"quality_obliquity_deg_{side}": np.array(obliquity, dtype=float),
        f"quality_segment_px_{side}": np.array(segment, dtype=float),
    }


def _seen_frames(seen: int, of: int) -> tuple[float, ...]:
    return (1.0,) * seen + (0.0,) * (of - seen)


# --- the measures --------------------------------------------------------------------------------


def test_the_measures_cover_both_sides_and_are_named_for_a_repetition():
    measures = quality_measures(_poses(_frame("left"), _frame("left")), SQUAT)
    assert all(name.startswith("quality_") for name in measures)
    assert all(name.endswith(("_left", "_right")) for name in measures)
    for side in ("left", "right"):
        for name in ("seen", "obliquity_deg", "segment_px"):
            assert measures[f"quality_{name}_{side}"].shape == (2,)


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_well_seen_big_leg_in_the_image_plane_measures_exactly(side):
    measures = quality_measures(_poses(_frame(side, thigh_px=120.0, shank_px=90.0)), SQUAT)
    assert measures[f"quality_seen_{side}"][0] == 1.0
    assert measures[f"quality_obliquity_deg_{side}"][0] == pytest.approx(0.0, abs=1e-6)
    assert measures[f"quality_segment_px_{side}"][0] == pytest.approx(90.0)
    assert grade_repetition(measures, KNEE, side) == Quality(Grade.GOOD, ())
    other = "right" if side == "left" else "left"
    assert measures[f"quality_seen_{other}"][0] == 0.0  # the other leg is not in the picture


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("tilt", [0.0, 29.0, 45.0, 61.0, 90.0])
def test_the_limb_plane_reads_its_tilt_out_of_the_image_plane(side, tilt):
    measures = quality_measures(_poses(_frame(side, tilt_deg=tilt)), SQUAT)
    assert measures[f"quality_obliquity_deg_{side}"][0] == pytest.approx(tilt, abs=1e-6)


@pytest.mark.parametrize("visibility, seen", [(MIN_VISIBILITY, 1.0), (MIN_VISIBILITY - 0.01, 0.0)])
def test_a_landmark_is_seen_from_the_kinematics_visibility_limit_on(visibility, seen):
    measures = quality_measures(_poses(_frame("right"), visibility=visibility), SQUAT)
    assert measures["quality_seen_right"][0] == seen


def test_one_hidden_point_of_the_three_hides_the_angle():
    poses = _poses(_frame("left"))
    poses.visibility[0, Landmark.LEFT_ANKLE] = 0.2
    assert quality_measures(poses, SQUAT)["quality_seen_left"][0] == 0.0


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("facing_camera, body_deg", [(True, 90.0), (False, 0.0)])
def test_a_straight_leg_hanging_in_the_image_plane_is_not_oblique_whichever_way_the_body_faces(
    side, facing_camera, body_deg
):
    poses = _poses(_frame(side, bend_deg=0.0, tilt_deg=45.0, facing_camera=facing_camera))
    assert plane_obliquity_deg(poses.world, Plane.SAGITTAL)[0] == pytest.approx(body_deg)
    obliquity = quality_measures(poses, SQUAT)[f"quality_obliquity_deg_{side}"][0]
    assert obliquity == pytest.approx(0.0, abs=1e-6)  # not the body's plane


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("facing_camera", [True, False])
@pytest.mark.parametrize("lean", [0.0, 10.0, -10.0, 29.0, 31.0, 45.0, -61.0, 80.0, 90.0])
def test_a_straight_leg_leaning_towards_or_away_from_the_camera_reads_its_lean(
    side, facing_camera, lean
):
    frame = _leaning_leg(side, thigh_deg=lean, shank_deg=lean, facing_camera=facing_camera)
    obliquity = quality_measures(_poses(frame), SQUAT)[f"quality_obliquity_deg_{side}"][0]
    assert obliquity == pytest.approx(abs(lean), abs=1e-6)  # 90: pointing at the camera


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "thigh, shank, obliquity",
    [
        (0.0, MIN_BEND_FOR_PLANE_DEG - 0.5, MIN_BEND_FOR_PLANE_DEG - 0.5),  # just under the limit
        (MIN_BEND_FOR_PLANE_DEG - 0.5, 0.0, MIN_BEND_FOR_PLANE_DEG - 0.5),  # the thigh this time
        (10.0, -15.0, 15.0),  # bent 25 deg: the more tilted segment
        (-20.0, -5.0, 20.0),
        (0.0, MIN_BEND_FOR_PLANE_DEG + 0.5, 90.0),  # just over it: the plane, edge-on
        (-15.5, 15.5, 90.0),
        (0.0, 180 - MIN_BEND_FOR_PLANE_DEG + 0.5, MIN_BEND_FOR_PLANE_DEG - 0.5),  # folded
        (0.0, 180 - MIN_BEND_FOR_PLANE_DEG - 0.5, 90.0),  # just less folded
        (0.0, 180.0, 0.0),  # folded flat back up the thigh
    ],
)
def test_a_nearly_straight_or_folded_leg_reads_its_more_tilted_segment(
    side, thigh, shank, obliquity
):
    """The leg lies in the y-z plane, 90 deg out of the image plane: its plane counts only where
    the bend fixes it."""
    frame = _leaning_leg(side, thigh_deg=thigh, shank_deg=shank, facing_camera=True)
    measured = quality_measures(_poses(frame), SQUAT)[f"quality_obliquity_deg_{side}"][0]
    assert measured == pytest.approx(obliquity, abs=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "bend, tilt, obliquity",
    [
        (0.0, 90.0, 0.0),
        (MIN_BEND_FOR_PLANE_DEG - 0.5, 90.0, MIN_BEND_FOR_PLANE_DEG - 0.5),  # the lower leg's tilt
        (MIN_BEND_FOR_PLANE_DEG - 0.5, 0.0, 0.0),
        (20.0, 45.0, float(np.degrees(np.arcsin(np.sin(np.radians(20)) * np.sin(np.radians(45)))))),
        (180 - MIN_BEND_FOR_PLANE_DEG + 0.5, 90.0, MIN_BEND_FOR_PLANE_DEG - 0.5),
        (180.0, 45.0, 0.0),
    ],
)
def test_a_nearly_straight_leg_bent_in_a_tilted_plane_reads_its_lower_legs_tilt(
    side, bend, tilt, obliquity
):
    frame = _frame(side, bend_deg=bend, tilt_deg=tilt, facing_camera=True)
    measured = quality_measures(_poses(frame), SQUAT)[f"quality_obliquity_deg_{side}"][0]
    assert measured == pytest.approx(obliquity, abs=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("facing_camera", [True, False])
@pytest.mark.parametrize(
    "bend", [MIN_BEND_FOR_PLANE_DEG + 0.5, 90.0, 180 - MIN_BEND_FOR_PLANE_DEG - 0.5]
)
def test_a_leg_bent_past_the_limit_either_way_keeps_its_own_plane(side, facing_camera, bend):
    frame = _frame(side, bend_deg=bend, tilt_deg=45.0, facing_camera=facing_camera)
    obliquity = quality_measures(_poses(frame), SQUAT)[f"quality_obliquity_deg_{side}"][0]
    assert obliquity == pytest.approx(45.0, abs=1e-6)


def test_a_hanging_arm_folded_on_the_trunk_line_reads_its_segments():
    arm = {
        Landmark.RIGHT_HIP: (np.array([-0.15, 0.0, 0.0]), np.array([300.0, 500.0])),
        Landmark.RIGHT_SHOULDER: (np.array([-0.15, -0.5, 0.0]), np.array([300.0, 300.0])),
        Landmark.RIGHT_ELBOW: (np.array([-0.15, -0.2, 0.0]), np.array([300.0, 400.0])),
    }
    frame = {**_body(facing_camera=True), **arm}  # arm hanging: hip, shoulder, elbow on one line
    measures = quality_measures(_poses(frame), BY_SLUG["shoulder_abduction"])
    assert measures["quality_obliquity_deg_right"][0] == pytest.approx(0.0)
    assert measures["quality_segment_px_right"][0] == pytest.approx(100.0)


def test_a_frame_without_a_pose_is_unseen_and_unmeasured():
    measures = quality_measures(_poses(_frame("left"), {}), SQUAT)
    assert measures["quality_seen_left"][1] == 0.0
    assert np.isnan(measures["quality_obliquity_deg_left"][1])
    assert np.isnan(measures["quality_segment_px_left"][1])
    assert measures["quality_segment_px_left"][0] == pytest.approx(100.0)


def test_nan_visibility_is_not_measured():
    poses = _poses(_frame("left"))
    poses.visibility[0, Landmark.LEFT_KNEE] = np.nan
    assert np.isnan(quality_measures(poses, SQUAT)["quality_seen_left"][0])


def test_each_frame_is_measured_alone_as_the_live_tracker_does():
    frames = [_frame("left", tilt_deg=tilt, thigh_px=px) for tilt, px in ((0, 90), (70, 50))]
    clip = quality_measures(_poses(*frames, {}), SQUAT)
    for i, frame in enumerate([*frames, {}]):
        alone = quality_measures(_poses(frame), SQUAT)
        for name, values in alone.items():
            np.testing.assert_array_equal(values, clip[name][i : i + 1])


# --- the grade -----------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "seen, grade",
    [
        (_seen_frames(9, 10), Grade.GOOD),  # at the good limit, 90 %
        (_seen_frames(17, 20), Grade.FAIR),  # just under it
        (_seen_frames(10, 20), Grade.FAIR),  # at the poor limit, 50 %
        (_seen_frames(9, 20), Grade.POOR),  # just under it
    ],
)
def test_the_seen_share_sets_the_grade_at_its_limits(side, seen, grade):
    assert GOOD_SEEN_SHARE == 0.9 and POOR_SEEN_SHARE == 0.5
    frames = len(seen)
    measures = _measures(side, seen=seen, obliquity=[0.0] * frames, segment=[100.0] * frames)
    assert grade_repetition(measures, KNEE, side).grade is grade


def test_hidden_frames_are_named_with_their_share():
    measures = _measures("left", seen=_seen_frames(6, 10), obliquity=[0.0] * 10, segment=[99] * 10)
    assert grade_repetition(measures, KNEE, "left") == Quality(
        Grade.FAIR, ("knee hidden in 40% of the frames",)
    )


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "obliquity, grade",
    [
        (GOOD_OBLIQUITY_DEG, Grade.GOOD),
        (GOOD_OBLIQUITY_DEG + 0.5, Grade.FAIR),
        (POOR_OBLIQUITY_DEG, Grade.FAIR),
        (POOR_OBLIQUITY_DEG + 0.5, Grade.POOR),
    ],
)
def test_the_median_limb_plane_sets_the_grade_at_its_limits(side, obliquity, grade):
    measures = _measures(side, obliquity=(obliquity,))
    assert grade_repetition(measures, KNEE, side).grade is grade


def test_the_limb_plane_is_named_with_its_median_tilt():
    measures = _measures("right", seen=(1, 1, 1), obliquity=(10, 52, 80), segment=(99, 99, 99))
    assert grade_repetition(measures, KNEE, "right") == Quality(
        Grade.FAIR, ("limb plane 52° from the camera's view",)
    )


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "segment, grade",
    [
        (GOOD_SEGMENT_PX, Grade.GOOD),
        (GOOD_SEGMENT_PX - 0.5, Grade.FAIR),
        (POOR_SEGMENT_PX, Grade.FAIR),
        (POOR_SEGMENT_PX - 0.5, Grade.POOR),
    ],
)
def test_the_shorter_segment_sets_the_grade_at_its_limits(side, segment, grade):
    assert grade_repetition(_measures(side, segment=(segment,)), KNEE, side).grade is grade


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("thigh, shank", [(35.0, 90.0), (90.0, 35.0)])
def test_a_small_person_is_named_by_the_shorter_segments_pixels(side, thigh, shank):
    measures = quality_measures(_poses(_frame(side, thigh_px=thigh, shank_px=shank)), SQUAT)
    assert grade_repetition(measures, KNEE, side) == Quality(
        Grade.POOR, ("small in the picture: limb segment 35 px",)
    )


def test_the_size_is_named_with_its_median_segment():
    measures = _measures("left", seen=(1, 1, 1), obliquity=(0, 0, 0), segment=(30, 45, 99))
    assert grade_repetition(measures, KNEE, "left") == Quality(
        Grade.FAIR, ("small in the picture: limb segment 45 px",)
    )


def test_a_tilted_small_half_hidden_leg_names_every_reason_at_the_worst_grade():
    frames = [_frame("left", tilt_deg=52.0, thigh_px=50.0) for _ in range(4)]
    poses = _poses(*frames)
    poses.visibility[:3, Landmark.LEFT_KNEE] = 0.1
    quality = grade_repetition(quality_measures(poses, SQUAT), KNEE, "left")
    assert quality == Quality(
        Grade.POOR,
        (
            "knee hidden in 75% of the frames",
            "limb plane 52° from the camera's view",
            "small in the picture: limb segment 50 px",
        ),
    )


def test_frames_without_a_pose_count_as_hidden_but_leave_the_medians_alone():
    frames = [_frame("right", tilt_deg=20.0, thigh_px=70.0) for _ in range(9)]
    measures = quality_measures(_poses(*frames, {}), SQUAT)
    assert grade_repetition(measures, KNEE, "right") == Quality(Grade.GOOD, ())
    measures = quality_measures(_poses(*frames[:8], {}, {}), SQUAT)
    assert grade_repetition(measures, KNEE, "right") == Quality(
        Grade.FAIR, ("knee hidden in 20% of the frames",)
    )


def test_a_repetition_without_any_pose_is_poor_for_being_hidden():
    quality = grade_repetition(quality_measures(_poses({}, {}), SQUAT), KNEE, "left")
    assert quality.grade is Grade.POOR
    assert quality.reasons[0] == "knee hidden in 100% of the frames"


def test_nan_seen_frames_count_as_hidden():
    measures = _measures("left", seen=(1, np.nan), obliquity=(0, np.nan), segment=(99, np.nan))
    assert grade_repetition(measures, KNEE, "left") == Quality(
        Grade.FAIR, ("knee hidden in 50% of the frames",)
    )


def test_unknown_keys_and_the_other_side_are_ignored():
    measures = {
        **_measures("left"),
        **_measures("right", seen=(0.0,), obliquity=(89.0,), segment=(5.0,)),
        "trunk_from_vertical_deg": np.array([80.0]),
        "quality_something_new_left": np.array([np.nan]),
    }
    assert grade_repetition(measures, KNEE, "left") == Quality(Grade.GOOD, ())


def test_measures_not_taken_leave_the_grade_fair_at_best():
    quality = grade_repetition({"trunk_from_vertical_deg": np.array([10.0])}, KNEE, "left")
    assert quality.grade is Grade.FAIR
    assert quality.reasons == (
        "whether the knee was seen was not measured",
        "limb plane not measured",
        "size in the picture not measured",
    )


def test_a_shoulder_exercise_names_its_joint():
    measures = quality_measures(_poses({}), BY_SLUG["shoulder_flexion"])
    measures["quality_segment_px_left"] = np.array([30.0])
    assert grade_repetition(measures, SHOULDER_FLEXION, "left") == Quality(
        Grade.POOR,
        (
            "shoulder hidden in 100% of the frames",
            "limb plane not measured",
            "small in the picture: limb segment 30 px",
        ),
    )


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "angle, joint",
    [
        (KNEE_FLEXION, "knee"),
        (HIP_FLEXION, "hip"),
        (SHOULDER_FLEXION, "shoulder"),
        (ELBOW_FLEXION, "elbow"),
    ],
)
def test_the_reasons_name_the_angles_vertex(side, angle, joint):
    measures = _measures(side, seen=_seen_frames(3, 10), obliquity=[0.0] * 10, segment=[99] * 10)
    assert grade_repetition(measures, angle, side) == Quality(
        Grade.POOR, (f"{joint} hidden in 70% of the frames",)
    )
    unmeasured = grade_repetition({}, angle, side)
    assert unmeasured.reasons[0] == f"whether the {joint} was seen was not measured"


def test_the_squat_grades_its_knee():
    assert SQUAT.angle is KNEE_FLEXION


def test_an_unknown_side_is_refused():
    with pytest.raises(ValueError, match="side"):
        grade_repetition(_measures("left"), KNEE, "both")
