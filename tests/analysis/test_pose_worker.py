"""A pose worker's frame service: stateless, tracking state travelling with the frames."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.pose.engine import RUNTIMES, PoseEngine, Tracking
from analysis.pose.identity import COLOUR_BINS, ENROL_FRAMES, IdentityStatus, Signature
from analysis.pose.roi import RegionOfInterest
from analysis.pose.worker import FrameServer, serve_frame, tracking_from_dict, tracking_to_dict

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


def test_a_worker_on_litert_serves_a_stream_and_learns_its_person():
    server = FrameServer("litert")
    tracking = None
    for index, jpeg in enumerate(_squat_jpegs(ENROL_FRAMES + 2)):
        reply = server.serve(jpeg, index / 15, tracking)
        json.dumps(reply)
        assert reply["pose"] is not None and reply["pose"]["image_size"] == [360, 640]
        tracking = reply["tracking"]
        assert tracking["next_box"] is not None
    assert reply["identity"] == "confirmed"


def test_a_worker_whose_engine_broke_loses_one_frame_and_serves_the_next():
    server = FrameServer()
    jpeg = _squat_jpegs(1)[0]
    server.engine.close()  # a graph that cannot take packets any more, like one that failed
    assert server.serve(jpeg, 0.0, None)["error"] == "pose_failed"
    answer = server.serve(jpeg, 0.1, None)
    assert answer["pose"] is not None and len(answer["pose"]["image_xyz"]) == 33


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_worker_rebuilt_after_a_failure_stays_on_its_runtime(runtime, monkeypatch):
    """The fresh engine answers exactly as a fresh worker on the same runtime (the runtimes' own
    landmarks differ by a pixel or two)."""
    server = FrameServer(runtime)
    jpeg = _squat_jpegs(1)[0]

    def failing(*args: object) -> None:
        raise RuntimeError("the model failed")  # LiteRT holds no state that could break

    monkeypatch.setattr(server.engine, "estimate", failing)
    assert server.serve(jpeg, 0.0, None)["error"] == "pose_failed"
    assert server.serve(jpeg, 0.1, None) == FrameServer(runtime).serve(jpeg, 0.1, None)


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


def test_the_tracking_state_with_a_signature_survives_the_wire_as_json():
    """Everything a stream carries between workers comes back equal from its JSON."""
    with PoseEngine(smooth=False) as engine:
        tracking = tracking_from_dict(None)
        for index, jpeg in enumerate(_squat_jpegs(ENROL_FRAMES)):
            reply = serve_frame(engine, jpeg, index / 5, tracking_to_dict(tracking))
            tracking = tracking_from_dict(json.loads(json.dumps(reply["tracking"])))
    assert reply["identity"] == "confirmed" and tracking.status is IdentityStatus.CONFIRMED
    assert tracking.identity is not None and tracking.identity.enrolled
    wire = json.dumps(tracking_to_dict(tracking))
    assert len(wire) < 1000  # it travels with every frame
    again = tracking_from_dict(json.loads(wire))
    assert again.status is tracking.status and again.doubts == tracking.doubts
    assert again.next_box == tracking.next_box and again.last_seen == tracking.last_seen
    assert again.identity is not None
    assert np.allclose(again.identity.torso, tracking.identity.torso, atol=1e-4)
    assert np.allclose(again.identity.thighs, tracking.identity.thighs, atol=1e-4)
    assert again.identity.torso_frames == tracking.identity.torso_frames


def test_every_field_of_the_tracking_state_comes_back_from_the_wire():
    box = RegionOfInterest(0.4, 0.5, 0.3, 0.2, 0.1)
    tracking = Tracking(
        next_box=box,
        last_seen=box,
        identity=Signature(torso=(0.25,) * 4 + (0.0,) * (COLOUR_BINS - 4), torso_frames=3),
        status=IdentityStatus.UNCERTAIN,
        doubts=2,
        waiting=5,
        chosen=True,
    )
    assert tracking_from_dict(json.loads(json.dumps(tracking_to_dict(tracking)))) == tracking


BAD_IDENTITIES = {
    "not a dict": "nonsense",
    "missing keys": {"torso": []},
    "short histogram": {"torso": [0.5, 0.5], "thighs": [], "torso_frames": 8, "thigh_frames": 0},
    "text in it": {"torso": ["a"] * 28, "thighs": [], "torso_frames": 8, "thigh_frames": 0},
    "negative share": {"torso": [-1.0] * 28, "thighs": [], "torso_frames": 8, "thigh_frames": 0},
    "infinite share": {
        "torso": [float("inf")] * 28,
        "thighs": [],
        "torso_frames": 8,
        "thigh_frames": 0,
    },
    "count a bool": {"torso": [0.0] * 28, "thighs": [], "torso_frames": True, "thigh_frames": 0},
    "count negative": {"torso": [0.0] * 28, "thighs": [], "torso_frames": -3, "thigh_frames": 0},
}


@pytest.mark.parametrize("case", BAD_IDENTITIES)
def test_a_malformed_signature_is_treated_as_none_and_the_person_is_learnt_again(engines, case):
    wire = {
        "next_box": None,
        "last_seen": None,
        "identity": BAD_IDENTITIES[case],
        "status": "confirmed",
        "doubts": "many",
    }
    tracking = tracking_from_dict(wire)  # type: ignore[arg-type]
    assert tracking.identity is None and tracking.doubts == 0
    assert tracking.status is IdentityStatus.ENROLLING  # nothing is confirmed without one
    reply = serve_frame(engines[0], _squat_jpegs(1)[0], 0.0, wire)  # type: ignore[arg-type]
    assert reply["pose"] is not None and reply["identity"] == "enrolling"


def test_a_tracking_state_from_before_identities_still_serves_its_stream(engines):
    jpeg = _squat_jpegs(1)[0]
    first = serve_frame(engines[0], jpeg, 0.0, None)
    old = {"next_box": first["tracking"]["next_box"], "last_seen": None}
    reply = serve_frame(engines[1], jpeg, 0.2, old)  # type: ignore[arg-type]
    assert reply["pose"] is not None and reply["identity"] == "enrolling"
