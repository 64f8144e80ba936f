"""What a pose worker does with one frame of a live stream, whichever process it runs in.

A worker is stateless between frames: the stream's Tracking (the box to look in next and where
the person was last seen) arrives with each frame and goes back with the answer, so any worker
can serve any frame of any stream and a stream survives a worker's death. Requests and replies
are plain dicts of JSON-able values (plus the frame bytes), ready for a channel layer or a process
pool.
"""

from dataclasses import asdict
from typing import Any

from analysis.pose.engine import PoseEngine, PoseResult, Tracking
from analysis.pose.frames import FrameError, decode_frame
from analysis.pose.roi import RegionOfInterest


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
