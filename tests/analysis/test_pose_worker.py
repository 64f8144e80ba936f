"""A pose worker's frame service: stateless, tracking state travelling with the frames."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.pose.engine import PoseEngine
from analysis.pose.worker import FrameServer, serve_frame, tracking_from_dict

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="module")
def engines():
    with PoseEngine(smooth=False) as first, PoseEngine(smooth=False) as second:
        yield first, second


def _squat_jpegs(count: int) -> list[bytes]:
    video = cv2.VideoCapture(str(FIXTURES / "pose_squats.mp4"))
    frames = []
    for _ in range(count):
        ok, frame = video.read()
        frame = cv2.resize(frame, (360, 640))
        frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    return frames


def test_two_workers_serve_alternate_frames_of_one_stream(engines):
    tracking = None
    for index, jpeg in enumerate(_squat_jpegs(6)):
        reply = serve_frame(engines[index % 2], jpeg, index / 5, tracking)
        json.dumps(reply)  # travels as JSON through the channel layer
        assert reply["pose"] is not None and len(reply["pose"]["image_xyz"]) == 33
        assert reply["pose"]["image_size"] == [360, 640]
        tracking = reply["tracking"]
        assert tracking["next_box"] is not None


@pytest.mark.parametrize(
    "frame, code",
    [
        (b"", "empty"),
        (b"\xff\xd8\xff" + b"\x00" * 10, "truncated"),
        (np.random.default_rng(0).bytes(5000), "unknown_format"),
    ],
)
def test_a_bad_frame_is_an_error_reply_not_a_crash(engines, frame, code):
    reply = serve_frame(engines[0], frame, 0.0, None)
    assert reply["error"] == code and reply["message"].endswith(".")


@pytest.mark.parametrize(
    "state", [None, "nonsense", {"next_box": {"x_center": "a"}}, {"next_box": [1, 2]}, {}]
)
def test_a_malformed_tracking_state_only_costs_a_fresh_detection(state):
    tracking = tracking_from_dict(state)
    assert tracking.next_box is None and tracking.last_seen is None


def test_a_worker_whose_engine_broke_loses_one_frame_and_serves_the_next():
    server = FrameServer()
    jpeg = _squat_jpegs(1)[0]
    server.engine.close()  # a graph that cannot take packets any more, like one that failed
    assert server.serve(jpeg, 0.0, None)["error"] == "pose_failed"
    answer = server.serve(jpeg, 0.1, None)
    assert answer["pose"] is not None and len(answer["pose"]["image_xyz"]) == 33


def _side_squat_jpegs(count: int) -> list[bytes]:
    """Frames of another person (the side-view gym squat), 15 a second, as a page sends them."""
    video = cv2.VideoCapture(str(FIXTURES / "squat_side_rohanx01.mp4"))
    frames = []
    for index in range(2 * count):
        ok, frame = video.read()
        if index % 2 == 0:
            frame = cv2.resize(frame, (270, 480))
            frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes())
    return frames


def _serve_stream(server: FrameServer, jpegs: list[bytes], fps: float) -> list[np.ndarray]:
    tracking, poses = None, []
    for index, jpeg in enumerate(jpegs):
        reply = server.serve(jpeg, index / fps, tracking)
        tracking, pose = reply["tracking"], reply["pose"]
        assert pose is not None  # narrows the type (indexing None failed the test before)
        poses.append(np.array(pose["image_xyz"])[:, :2])
    return poses


def test_a_stream_gets_the_same_landmarks_whoever_the_worker_served_before():
    # A worker serves many patients in turn, each stream with its own clock. MediaPipe's landmark
    # graph filters over time even with smoothing off: served right after another person, a
    # stream's landmarks were pulled up to 58 % of the picture towards that person's pose.
    squats = _squat_jpegs(12)
    fresh = _serve_stream(FrameServer(), squats, fps=5)
    busy = FrameServer()
    _serve_stream(busy, _side_squat_jpegs(45), fps=15)  # 3 s of someone else, up to t = 3 s
    after_another = _serve_stream(busy, squats, fps=5)  # this stream's clock starts at 0
    worst = max(float(np.abs(a - b).max()) for a, b in zip(fresh, after_another, strict=True))
    assert worst < 0.02  # of the picture's width or height
