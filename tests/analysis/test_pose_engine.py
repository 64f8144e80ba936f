"""The top-down pose engine against MediaPipe's own reference outputs, on real images and video."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.pose.engine import ALONE_FRAMES, MISMATCH_FRAMES, RUNTIMES, PoseEngine, Tracking
from analysis.pose.identity import ENROL_FRAMES, IdentityStatus
from analysis.pose.models import LANDMARK_MODEL, PoseModelMissingError
from analysis.pose.roi import RegionOfInterest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def engine():
    with PoseEngine() as pose_engine:
        yield pose_engine


@pytest.fixture(params=["mediapipe", "litert"])
def any_engine(request):
    """The offline engine (MediaPipe's graphs, smoothed), and a live worker's on LiteRT."""
    if request.param == "mediapipe":
        with PoseEngine() as pose_engine:
            yield pose_engine
    else:
        with PoseEngine(smooth=False, runtime="litert") as pose_engine:
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


def _big_one_alone(photo: np.ndarray) -> np.ndarray:
    scene = _two_people(photo)
    scene[:, :425] = 128
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


def test_on_litert_it_follows_the_person_through_the_squat_video_as_the_graphs_do():
    """The live workers' runtime against MediaPipe's graphs, both unsmoothed as in a worker, on
    every second frame (15 frames/s, as a page sends them): the same landmarks to a few pixels
    (2.2 px measured) on a 720x1280 video, and tracked from the second frame on."""
    video = cv2.VideoCapture(str(FIXTURES / "pose_squats.mp4"))
    errors: list[float] = []
    with PoseEngine(smooth=False) as graphs, PoseEngine(smooth=False, runtime="litert") as litert:
        for index in range(0, 65, 2):
            ok, frame = video.read()
            video.read()
            assert ok
            expected, found = graphs.process(frame, index / 30), litert.process(frame, index / 30)
            assert expected is not None and found is not None, f"no pose on frame {index}"
            assert found.tracked == (index > 0)
            errors.append(float(np.median(np.linalg.norm(found.pixels - expected.pixels, axis=1))))
        assert litert.status is IdentityStatus.CONFIRMED
    assert np.median(errors) < 3.0 and max(errors) < 8.0


def test_smoothing_is_refused_on_litert_and_an_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="does not smooth landmarks: use smooth=False"):
        PoseEngine(runtime="litert")
    with pytest.raises(ValueError, match="unknown pose runtime 'onnx': one of mediapipe, litert"):
        PoseEngine(smooth=False, runtime="onnx")


def test_with_two_people_in_view_from_the_start_it_cannot_tell_whom_to_follow(any_engine, photo):
    """Whom to learn is unknown while someone else stands there too: no pose, "uncertain". The
    box is kept on the largest, most central person; once they have been alone for
    ALONE_FRAMES frames in a row, they are followed."""
    engine = any_engine
    for frame in range(3):
        assert engine.process(_two_people(photo), frame / 10) is None
        assert engine.status is IdentityStatus.UNCERTAIN
    alone = [engine.process(_big_one_alone(photo), 0.3 + frame / 10) for frame in range(10)]
    assert alone[: ALONE_FRAMES - 1] == [None] * (ALONE_FRAMES - 1)
    assert all(pose is not None and pose.tracked for pose in alone[ALONE_FRAMES - 1 :])
    assert all(425 < pose.pixels[:, 0].mean() < 975 for pose in alone if pose is not None)
    assert engine.status is IdentityStatus.CONFIRMED


def test_it_keeps_following_its_person_when_someone_larger_walks_in(engine, photo):
    for frame in range(ENROL_FRAMES):
        alone = engine.process(_two_people(photo, with_big_one=False), frame / 10)
        assert alone is not None and alone.pixels[:, 0].mean() < 400
    assert engine.status is IdentityStatus.CONFIRMED
    for frame in range(ENROL_FRAMES, ENROL_FRAMES + 5):
        followed = engine.process(_two_people(photo), frame / 10)
        assert followed is not None and followed.tracked
        assert followed.pixels[:, 0].mean() < 400


def test_a_stream_served_by_two_engines_in_turn_keeps_its_person(photo):
    """The tracking state travels with the frames, as it does between pose worker processes."""
    tracking = Tracking()
    with PoseEngine(smooth=False) as first, PoseEngine(smooth=False) as second:
        for frame in range(ENROL_FRAMES):
            engine = (first, second)[frame % 2]
            alone = _two_people(photo, with_big_one=False)
            result, tracking = engine.estimate(alone, frame / 10, tracking)
        assert tracking.status is IdentityStatus.CONFIRMED
        for frame in range(ENROL_FRAMES, ENROL_FRAMES + 5):
            engine = (first, second)[frame % 2]
            result, tracking = engine.estimate(_two_people(photo), frame / 10, tracking)
            assert result is not None and result.tracked
            assert result.pixels[:, 0].mean() < 400


def test_forgetting_the_person_learns_the_most_prominent_one_afresh(engine, photo):
    for frame in range(ENROL_FRAMES):
        engine.process(_two_people(photo, with_big_one=False), frame / 10)
    engine.forget_person()
    result = engine.process(_big_one_alone(photo), 1.0)
    assert result is not None and 425 < result.pixels[:, 0].mean() < 975
    assert engine.status is IdentityStatus.ENROLLING


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


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_missing_model_file_is_a_clear_error_naming_it(tmp_path, runtime):
    with pytest.raises(PoseModelMissingError, match="pose_detection.tflite"):
        PoseEngine(smooth=False, runtime=runtime, model_root=tmp_path)
    detector = tmp_path / "mediapipe/modules/pose_detection/pose_detection.tflite"
    detector.parent.mkdir(parents=True)
    detector.write_bytes(b"")
    with pytest.raises(PoseModelMissingError, match=LANDMARK_MODEL.name):
        PoseEngine(smooth=False, runtime=runtime, model_root=tmp_path)


# --- identity: two real people, side by side ------------------------------------------------------
# The squatting woman of pose_squats.mp4 (pink top) and the man of squat_side_rohanx01.mp4 (black
# top), each in a 360x640 half of the picture; an empty half is grey.
HALF = (360, 640)
EMPTY = np.full((HALF[1], HALF[0], 3), 128, dtype=np.uint8)


def _frames(name: str, count: int, step: int = 1) -> list[np.ndarray]:
    video = cv2.VideoCapture(str(FIXTURES / name))
    frames = []
    for index in range(count * step):
        ok, frame = video.read()
        assert ok
        if index % step == 0:
            frames.append(cv2.resize(frame, HALF, interpolation=cv2.INTER_AREA))
    return frames


@pytest.fixture(scope="module")
def woman() -> list[np.ndarray]:
    return _frames("pose_squats.mp4", ENROL_FRAMES + 8)


@pytest.fixture(scope="module")
def man() -> list[np.ndarray]:
    return _frames("squat_side_rohanx01.mp4", ENROL_FRAMES + 8, step=2)


def _hips_x(pose) -> float:
    return float(pose.pixels[23:25, 0].mean())


def _learn_her(engine: PoseEngine, woman: list[np.ndarray]) -> None:
    """The woman alone in the left half, long enough to be learnt."""
    for index in range(ENROL_FRAMES):
        assert engine.process(np.hstack([woman[index], EMPTY]), index / 10) is not None
    assert engine.status is IdentityStatus.CONFIRMED


def test_a_box_that_lands_on_someone_else_gives_no_pose_until_the_person_is_found_again(
    any_engine, woman, man
):
    """They swap places: the box from her last frame lies on him. His frames are withheld, and
    once they have not looked like her for MISMATCH_FRAMES frames she is found on the right."""
    engine = any_engine
    _learn_her(engine, woman)
    poses, statuses = [], []
    for index in range(ENROL_FRAMES, ENROL_FRAMES + 6):
        poses.append(engine.process(np.hstack([man[index], woman[index]]), index / 10))
        statuses.append(engine.status)
    assert all(pose is None or _hips_x(pose) > HALF[0] for pose in poses)  # never him
    assert poses[: MISMATCH_FRAMES - 1] == [None] * (MISMATCH_FRAMES - 1)
    assert statuses[: MISMATCH_FRAMES - 1] == [IdentityStatus.UNCERTAIN] * (MISMATCH_FRAMES - 1)
    assert all(pose is not None for pose in poses[MISMATCH_FRAMES - 1 :])
    assert statuses[-1] is IdentityStatus.CONFIRMED


def test_after_a_loss_only_the_matching_person_is_taken_back_not_the_nearest(
    any_engine, woman, man
):
    engine = any_engine
    _learn_her(engine, woman)
    assert engine.process(np.hstack([EMPTY, EMPTY]), 1.0) is None  # she left
    assert engine.status is IdentityStatus.CONFIRMED  # nobody in view: nothing to doubt
    # He comes in where she stood: the nearest to where she was last seen, and not her.
    for index in range(3):
        assert engine.process(np.hstack([man[index], EMPTY]), 1.1 + index / 10) is None
        assert engine.status is IdentityStatus.UNCERTAIN
    back = engine.process(np.hstack([man[3], woman[3]]), 1.5)
    assert back is not None and _hips_x(back) > HALF[0]
    assert engine.status is IdentityStatus.CONFIRMED


def test_two_people_who_look_alike_give_no_pose(engine, woman):
    """Her twice (the same frame in both halves) after a loss: both match, cannot tell."""
    _learn_her(engine, woman)
    assert engine.process(np.hstack([EMPTY, EMPTY]), 1.0) is None
    assert engine.process(np.hstack([woman[0], woman[0]]), 1.1) is None
    assert engine.status is IdentityStatus.UNCERTAIN
    alone = engine.process(np.hstack([EMPTY, woman[1]]), 1.2)  # one of them leaves
    assert alone is not None and _hips_x(alone) > HALF[0]


def test_someone_else_in_view_while_it_learns_gives_no_pose(engine, woman, man):
    for index in range(3):
        assert engine.process(np.hstack([woman[index], man[index]]), index / 10) is None
        assert engine.status is IdentityStatus.UNCERTAIN


def test_a_person_handed_over_is_learnt_and_followed_with_someone_else_in_view(man, woman):
    """PoseEngine.follow: the patient was chosen outside the engine (the one exercising)."""
    with PoseEngine() as engine:
        found, alone = engine.estimate(np.hstack([EMPTY, man[0]]), 0.0, Tracking())
        assert found is not None and alone.next_box is not None
        engine.follow(alone.next_box)
        for index in range(1, ENROL_FRAMES + 4):
            pose = engine.process(np.hstack([woman[index], man[index]]), index / 10)
            assert pose is not None and _hips_x(pose) > HALF[0]
        assert engine.status is IdentityStatus.CONFIRMED
