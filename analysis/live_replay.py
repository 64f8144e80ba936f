"""A recorded video through the live path, as a patient's browser and the server would run it.

The page sends at most BROWSER_FPS frames a second, scaled down to fit BROWSER_MAX_SIZE and
compressed as JPEG at BROWSER_JPEG_QUALITY (`static/js/live/camera.js`); a pose worker decodes
each one with the frame guard and answers with the stream's tracking state (`analysis.pose.worker`);
the tracker turns the answers into feedback (`analysis.tracker`). This module chains those same
parts over a video file, so that the live count can be compared with `analyze_video`'s on the same
clip (bench/rep_accuracy.py, tests).

    poses = serve_stream(browser_frames(path))          # [(t_s, Pose | None)], one per frame
    reps = track_live(poses, plan).reps
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from analysis.counting import PartialRepetition
from analysis.pose.types import Pose, TrackingWire, pose_from_wire
from analysis.repetitions import RepetitionMetrics
from analysis.tracker import ExerciseTracker, Feedback, Plan
from analysis.video import read_frames, video_fps

BROWSER_FPS = 15.0
BROWSER_MAX_SIZE = (640, 480)
BROWSER_JPEG_QUALITY = 70  # the page's canvas.toBlob(..., "image/jpeg", 0.7)


@dataclass
class LiveReplay:
    reps: list[RepetitionMetrics] = field(default_factory=list)
    partials: list[PartialRepetition] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)


def browser_frames(path: Path, fps: float = BROWSER_FPS) -> Iterator[tuple[float, bytes]]:
    """(time in seconds, JPEG bytes) at most `fps` times a second, as the page captures them."""
    next_at = 0.0
    for t_s, frame in read_frames(path, video_fps(path)):
        if t_s + 1e-9 < next_at:
            continue
        next_at = t_s + 1 / fps
        yield t_s, _as_browser_jpeg(frame)


def _as_browser_jpeg(frame: np.ndarray) -> bytes:
    height, width = frame.shape[:2]
    scale = min(1.0, BROWSER_MAX_SIZE[0] / width, BROWSER_MAX_SIZE[1] / height)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, BROWSER_JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode a frame as JPEG")
    return encoded.tobytes()


def serve_stream(
    frames: Iterable[tuple[float, bytes]], runtime: str = "mediapipe"
) -> list[tuple[float, Pose | None]]:
    """Each frame through a pose worker's FrameServer on the pose `runtime`, the tracking state
    carried from one answer to the next as the consumer carries it."""
    # Imported here: the pose engine loads MediaPipe, which replaying cached poses never needs.
    from analysis.pose.worker import FrameServer

    server = FrameServer(runtime)
    tracking: TrackingWire | None = None
    served: list[tuple[float, Pose | None]] = []
    try:
        for t_s, jpeg in frames:
            answer = server.serve(jpeg, t_s, tracking)
            if "error" in answer:
                served.append((t_s, None))
                continue
            tracking = answer["tracking"]
            served.append((t_s, pose_from_wire(answer["pose"])))
    finally:
        server.engine.close()
    return served


def track_live(
    poses: Iterable[tuple[float, Pose | None]], plan: Plan, *, countdown_done: bool = True
) -> LiveReplay:
    """The tracker fed frame by frame; with `countdown_done`, as in a session whose patient has
    already been placed and counted down once (the start of a video is mid-exercise)."""
    tracker = ExerciseTracker(plan, countdown_done=countdown_done)
    replay = LiveReplay()
    for t_s, pose in poses:
        feedback = tracker.update(t_s, pose)
        replay.feedback.append(feedback)
        if feedback.repetition is not None:
            replay.reps.append(feedback.repetition)
        if feedback.partial is not None:
            replay.partials.append(feedback.partial)
    tail = tracker.finish()
    if isinstance(tail, PartialRepetition):
        replay.partials.append(tail)
    elif tail is not None:
        replay.reps.append(tail)
    return replay
