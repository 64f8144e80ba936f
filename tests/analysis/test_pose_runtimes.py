"""BlazePose run directly by LiteRT and ONNX Runtime (analysis.pose.blazepose, runtimes) against
MediaPipe's graphs, on the reference photo and on frames of the squat video."""

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.pose.blazepose import BlazePose, BoxTracking, detector_anchors
from analysis.pose.engine import PoseEngine, Tracking
from analysis.pose.runtimes import ONNX_DIR, litert_blazepose, onnx_blazepose

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SQUAT_FRAMES = range(0, 65, 8)  # the detector on the first, then tracked frames 8 apart


@pytest.fixture(scope="module", params=["litert", "onnxruntime"])
def direct(request: pytest.FixtureRequest) -> BlazePose:
    makers: dict[str, Callable[[], BlazePose]] = {
        "litert": litert_blazepose,
        "onnxruntime": onnx_blazepose,
    }
    return makers[request.param]()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(FIXTURES / "pose.jpg"))


@pytest.fixture(scope="module")
def squat_frames() -> list[np.ndarray]:
    video = cv2.VideoCapture(str(FIXTURES / "pose_squats.mp4"))
    frames = []
    for index in range(max(SQUAT_FRAMES) + 1):
        ok, frame = video.read()
        assert ok
        if index in SQUAT_FRAMES:
            frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def graph_poses(photo, squat_frames):
    """MediaPipe's graphs as a live worker runs them, each image a stream of its own."""
    with PoseEngine(smooth=False) as engine:
        return [engine.estimate(image, 0.0, Tracking())[0] for image in [photo, *squat_frames]]


def test_it_agrees_with_mediapipe_reference_landmarks_on_the_photo(direct, photo, graph_poses):
    reference = json.loads((FIXTURES / "pose_jpg_expected_mediapipe_landmarks.json").read_text())
    expected = reference["mediapipe_python_solutions_pose_test"]
    pose, tracking = direct.estimate(photo, 0.0, BoxTracking())
    assert pose is not None and not pose.tracked and tracking.next_box is not None
    expected_px = np.array(expected["expected_pose_landmarks_px_xy"], dtype=float)
    assert np.abs(pose.pixels - expected_px).max() < expected["pixel_tolerance"]
    # The same models and processing as the graphs: far closer to them than to the reference.
    assert np.abs(pose.pixels - graph_poses[0].pixels).max() < 1.0
    assert np.abs(pose.world - graph_poses[0].world).max() < 0.01
    assert np.abs(pose.visibility - graph_poses[0].visibility).max() < 0.01
    assert pose.image_size == (1000, 667)


def test_it_agrees_with_the_graphs_on_squat_frames(direct, squat_frames, graph_poses):
    for frame, expected in zip(squat_frames, graph_poses[1:], strict=True):
        pose, _ = direct.estimate(frame, 0.0, BoxTracking())
        assert pose is not None and expected is not None
        assert np.median(np.linalg.norm(pose.pixels - expected.pixels, axis=1)) < 1.0


def test_in_tracking_mode_it_follows_the_person_on_the_previous_landmarks(direct, squat_frames):
    tracking = BoxTracking()
    poses = []
    for frame in squat_frames:
        pose, tracking = direct.estimate(frame, 0.0, tracking)
        poses.append(pose)
    assert all(pose is not None for pose in poses)
    assert [pose.tracked for pose in poses if pose is not None] == [False] + [True] * 8


def test_a_blank_frame_gives_no_pose(direct):
    blank = np.full((480, 640, 3), 128, dtype=np.uint8)
    assert direct.detect(blank) == []
    assert direct.estimate(blank, 0.0, BoxTracking()) == (None, BoxTracking())


def test_the_detector_has_2254_anchors_on_its_grids():
    anchors = detector_anchors()
    assert anchors.shape == (2254, 2)
    # Stride 8 first: 28x28 cells, two anchors each, row by row.
    assert np.allclose(anchors[:4], [[0.5 / 28, 0.5 / 28]] * 2 + [[1.5 / 28, 0.5 / 28]] * 2)
    assert np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_the_onnx_files_are_those_the_readme_records():
    readme = (ONNX_DIR / "README.md").read_text()
    recorded = dict(re.findall(r"`(\w+\.onnx)` \|.*\| `([0-9a-f]{64})` \|$", readme, re.M))
    assert set(recorded) == {"pose_detection.onnx", "pose_landmark_full.onnx"}
    for name, digest in recorded.items():
        assert hashlib.sha256((ONNX_DIR / name).read_bytes()).hexdigest() == digest
