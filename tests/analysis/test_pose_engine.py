"""The top-down pose engine against MediaPipe's own reference outputs, on real images and video."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.pose.engine import PoseEngine, Tracking
from analysis.pose.models import LANDMARK_MODEL, PoseModelMissingError
from analysis.pose.roi import RegionOfInterest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def engine():
    with PoseEngine() as pose_engine:
        yield pose_engine


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(FIXTURES / "pose.jpg"))


def _photo_reference() -> dict:
    expected = json.loads((FIXTURES / "pose_jpg_expected_mediapipe_landmarks.json").read_text())
    return expected["mediapipe_python_solutions_pose_test"]


def _two_people(photo: np.ndarray, *, with_big_one: bool = True) -> np.ndarray:
    """A 1400x667 scene: the photo's person at full size in the centre, a 0.7x copy on the left."""
    person = photo[:, 230:780]
    scene = np.full((667, 1400, 3), 128, dtype=np.uint8)
    if with_big_one:
        scene[:, 425:975] = person
    small = cv2.resize(person, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    scene[667 - small.shape[0] :, 40 : 40 + small.shape[1]] = small
    return scene


def test_it_agrees_with_mediapipe_on_the_reference_photo(engine, photo):
    reference = _photo_reference()
    result = engine.process(photo, 0.0)
    assert result is not None and not result.tracked
    expected_px = np.array(reference["expected_pose_landmarks_px_xy"], dtype=float)
    assert np.abs(result.pixels - expected_px).max() < reference["pixel_tolerance"]
    expected_world = np.array(reference["expected_pose_world_landmarks_m_xyz"], dtype=float)
    assert np.abs(result.world - expected_world).max() < reference["world_tolerance_m"]
    assert result.image_size == (1000, 667)
    assert result.visibility.shape == (33,) and result.visibility[0] > 0.9


def test_it_agrees_with_mediapipe_on_every_frame_of_the_squat_video(engine):
    reference = np.array(json.loads((FIXTURES / "pose_squats.full.json").read_text()))
    video = cv2.VideoCapture(str(FIXTURES / "pose_squats.mp4"))
    fps = video.get(cv2.CAP_PROP_FPS)
    errors: list[np.ndarray] = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        result = engine.process(frame, len(errors) / fps)
        assert result is not None, f"no pose on frame {len(errors)}"
        errors.append(np.linalg.norm(result.pixels - reference[len(errors)][:, :2], axis=1))
    assert len(errors) == 65
    assert np.median(errors) <= 5.0
    # After the first frame the box comes from the previous landmarks: the detector ran once.
    assert result.tracked


def test_it_starts_on_the_largest_most_central_person(engine, photo):
    result = engine.process(_two_people(photo), 0.0)
    assert result is not None
    center_x = result.pixels[:, 0].mean()
    assert 425 < center_x < 975


def test_it_keeps_following_its_person_when_someone_larger_walks_in(engine, photo):
    for frame in range(5):
        alone = engine.process(_two_people(photo, with_big_one=False), frame / 10)
        assert alone is not None and alone.pixels[:, 0].mean() < 400
    for frame in range(5, 10):
        followed = engine.process(_two_people(photo), frame / 10)
        assert followed is not None and followed.tracked
        assert followed.pixels[:, 0].mean() < 400


def test_a_stream_served_by_two_engines_in_turn_keeps_its_person(photo):
    """The tracking state travels with the frames, as it does between pose worker processes."""
    tracking = Tracking()
    with PoseEngine(smooth=False) as first, PoseEngine(smooth=False) as second:
        result, tracking = first.estimate(_two_people(photo, with_big_one=False), 0.0, tracking)
        for frame in range(1, 6):
            engine = (first, second)[frame % 2]
            result, tracking = engine.estimate(_two_people(photo), frame / 10, tracking)
            assert result is not None and result.tracked
            assert result.pixels[:, 0].mean() < 400


def test_forgetting_the_person_picks_the_most_prominent_one_again(engine, photo):
    engine.process(_two_people(photo, with_big_one=False), 0.0)
    engine.forget_person()
    result = engine.process(_two_people(photo), 0.1)
    assert result is not None and 425 < result.pixels[:, 0].mean() < 975


def test_a_lost_person_is_found_again_within_the_same_frame_and_timestamps_may_repeat(
    engine, photo
):
    """The tracked box shows nobody: the same frame goes to the detector and then to the
    landmark model a second time. Frames of other streams may carry earlier timestamps."""
    empty_corner = Tracking(next_box=RegionOfInterest(0.05, 0.05, 0.08, 0.08, 0.0))
    found, tracking = engine.estimate(photo, 1.0, empty_corner)
    assert found is not None and not found.tracked and tracking.next_box is not None
    again, _ = engine.estimate(photo, 1.0, empty_corner)
    earlier, _ = engine.estimate(photo, 0.5, tracking)
    assert again is not None and earlier is not None


def test_a_frame_without_anyone_gives_no_pose(engine):
    assert engine.process(np.full((480, 640, 3), 90, dtype=np.uint8), 0.0) is None


def test_a_missing_model_file_is_a_clear_error_naming_it(tmp_path):
    with pytest.raises(PoseModelMissingError, match="pose_detection.tflite"):
        PoseEngine(model_root=tmp_path)
    detector = tmp_path / "mediapipe/modules/pose_detection/pose_detection.tflite"
    detector.parent.mkdir(parents=True)
    detector.write_bytes(b"")
    with pytest.raises(PoseModelMissingError, match=LANDMARK_MODEL.name):
        PoseEngine(model_root=tmp_path)
