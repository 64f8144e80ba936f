"""What a pose worker does with one frame of a live stream, whichever process it runs in.

A worker is stateless between frames: the stream's Tracking (the box to look in next and where
the person was last seen) arrives with each frame and goes back with the answer, so any worker
can serve any frame of any stream and a stream survives a worker's death. Requests and replies
are plain dicts of JSON-able values (plus the frame bytes), ready for a channel layer or a process
pool.
"""

import contextlib
import logging
from dataclasses import asdict
from typing import Any

import numpy as np

from analysis.pose.engine import PoseEngine, PoseResult, Tracking
from analysis.pose.frames import FrameError, decode_frame
from analysis.pose.roi import RegionOfInterest
from analysis.tracker import FramePose

logger = logging.getLogger(__name__)


def serve_frame(
    engine: PoseEngine, frame: bytes, timestamp_s: float, tracking: dict[str, Any] | None
) -> dict[str, Any]:
    """{"pose": {...} or None, "tracking": {...}} or {"error": code, "message": text}."""
    image = decode_frame(frame)
    if isinstance(image, FrameError):
        return {"error": image.value, "message": image.message}
    result, next_tracking = engine.estimate(image, timestamp_s, tracking_from_dict(tracking))
    return {"pose": pose_to_dict(result), "tracking": tracking_to_dict(next_tracking)}


def pose_to_dict(result: PoseResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "image_xyz": result.image_xyz.round(5).tolist(),
        "world_xyz": result.world_xyz.round(4).tolist(),
        "visibility": result.visibility.round(3).tolist(),
        "image_size": list(result.image_size),
    }


def tracking_to_dict(tracking: Tracking) -> dict[str, Any]:
    return {
        "next_box": asdict(tracking.next_box) if tracking.next_box else None,
        "last_seen": asdict(tracking.last_seen) if tracking.last_seen else None,
    }


def tracking_from_dict(data: dict[str, Any] | None) -> Tracking:
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

    def serve(
        self, frame: bytes, timestamp_s: float, tracking: dict[str, Any] | None
    ) -> dict[str, Any]:
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
    frame: bytes, timestamp_s: float, tracking: dict[str, Any] | None
) -> dict[str, Any]:
    if _process_server is None:
        start_process_server()
    assert _process_server is not None  # nosec B101 # narrows the type: the line above set it
    return _process_server.serve(frame, timestamp_s, tracking)


def frame_pose_from_dict(pose: dict[str, Any] | None) -> FramePose | None:
    """The tracker's view of a worker's answer (the inverse of pose_to_dict)."""
    if pose is None:
        return None
    width, height = pose["image_size"]
    image_xyz = np.asarray(pose["image_xyz"], dtype=float)
    return FramePose(
        pixels=image_xyz[:, :2] * np.array([width, height]),
        world=np.asarray(pose["world_xyz"], dtype=float),
        visibility=np.asarray(pose["visibility"], dtype=float),
        image_size=(int(width), int(height)),
    )
