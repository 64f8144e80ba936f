"""What a pose worker does with one frame of a live stream, whichever process it runs in.

A worker is stateless between frames: the stream's Tracking (the box to look in next and where
the person was last seen) arrives with each frame and goes back with the answer, so any worker
can serve any frame of any stream and a stream survives a worker's death. Requests and replies
are plain dicts of JSON-able values (plus the frame bytes), ready for a channel layer or a process
pool; their shapes are in analysis.pose.types.
"""

import contextlib
import logging
from typing import Any

from analysis.pose.engine import PoseEngine, Tracking
from analysis.pose.frames import FrameError, decode_frame
from analysis.pose.roi import RegionOfInterest
from analysis.pose.types import BoxWire, PoseAnswer, TrackingWire

logger = logging.getLogger(__name__)


def serve_frame(
    engine: PoseEngine, frame: bytes, timestamp_s: float, tracking: TrackingWire | None
) -> PoseAnswer:
    """{"pose": {...} or None, "tracking": {...}} or {"error": code, "message": text}."""
    image = decode_frame(frame)
    if isinstance(image, FrameError):
        return {"error": image.value, "message": image.message}
    pose, next_tracking = engine.estimate(image, timestamp_s, tracking_from_dict(tracking))
    return {
        "pose": pose.to_wire() if pose is not None else None,
        "tracking": tracking_to_dict(next_tracking),
    }


def tracking_to_dict(tracking: Tracking) -> TrackingWire:
    return {
        "next_box": _box_to_dict(tracking.next_box) if tracking.next_box else None,
        "last_seen": _box_to_dict(tracking.last_seen) if tracking.last_seen else None,
    }


def _box_to_dict(box: RegionOfInterest) -> BoxWire:
    return {
        "x_center": box.x_center,
        "y_center": box.y_center,
        "width": box.width,
        "height": box.height,
        "rotation": box.rotation,
    }


def tracking_from_dict(data: TrackingWire | None) -> Tracking:
    """Tolerant of anything: a malformed state only costs a fresh detection."""
    if not isinstance(data, dict):
        return Tracking()
    return Tracking(next_box=_box(data.get("next_box")), last_seen=_box(data.get("last_seen")))


def _box(data: Any) -> RegionOfInterest | None:
    try:
        return RegionOfInterest(**{key: float(data[key]) for key in _BOX_FIELDS})
    except (TypeError, KeyError, ValueError):
        return None


_BOX_FIELDS = ("x_center", "y_center", "width", "height", "rotation")


class FrameServer:
    """The engine of one pose worker process, serving frames of many streams in turn.

    Landmark smoothing is off: consecutive frames come from different streams, so the live
    tracker smooths each stream's angles instead. A MediaPipe graph that failed refuses every
    later packet, so after an unexpected error the engine is rebuilt and only that frame is lost.
    """

    def __init__(self) -> None:
        self.engine = PoseEngine(smooth=False)

    def serve(self, frame: bytes, timestamp_s: float, tracking: TrackingWire | None) -> PoseAnswer:
        try:
            return serve_frame(self.engine, frame, timestamp_s, tracking)
        except Exception:
            logger.exception("the pose engine failed on a frame; starting a fresh one")
            with contextlib.suppress(Exception):  # its graphs may be half-broken already
                self.engine.close()
            self.engine = PoseEngine(smooth=False)
            return {"error": "pose_failed", "message": "The pose service failed on this frame."}


# --- A process pool's initializer and task --------------------------------------------------------
_process_server: FrameServer | None = None


def start_process_server() -> None:
    global _process_server
    _process_server = FrameServer()


def serve_frame_in_process(
    frame: bytes, timestamp_s: float, tracking: TrackingWire | None
) -> PoseAnswer:
    if _process_server is None:
        start_process_server()
    assert _process_server is not None  # nosec B101 # narrows the type: the line above set it
    return _process_server.serve(frame, timestamp_s, tracking)
