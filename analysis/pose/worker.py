"""What a pose worker does with one frame of a live stream, whichever process it runs in.

A worker is stateless between frames: the stream's Tracking (the box to look in next, where the
person was last seen, and who they are: their signature and how sure the engine is) arrives with
each frame and goes back with the answer, so any worker can serve any frame of any stream and a
stream survives a worker's death. Requests and replies
are plain dicts of JSON-able values (plus the frame bytes), ready for a channel layer or a process
pool; their shapes are in analysis.pose.types.
"""

import contextlib
import logging
import os
from typing import Any

from analysis.pose.engine import PoseEngine, Tracking
from analysis.pose.frames import FrameError, decode_frame
from analysis.pose.identity import IdentityStatus, signature_from_wire, signature_to_wire
from analysis.pose.roi import RegionOfInterest
from analysis.pose.types import BoxWire, PoseAnswer, TrackingWire

logger = logging.getLogger(__name__)


def serve_frame(
    engine: PoseEngine, frame: bytes, timestamp_s: float, tracking: TrackingWire | None
) -> PoseAnswer:
    """{"pose": {...} or None, "tracking": {...}, "identity": status} or {"error": code,
    "message": text}."""
    image = decode_frame(frame)
    if isinstance(image, FrameError):
        return {"error": image.value, "message": image.message}
    pose, next_tracking = engine.estimate(image, timestamp_s, tracking_from_dict(tracking))
    return {
        "pose": pose.to_wire() if pose is not None else None,
        "tracking": tracking_to_dict(next_tracking),
        "identity": next_tracking.status.value,
    }


def tracking_to_dict(tracking: Tracking) -> TrackingWire:
    identity = tracking.identity
    return {
        "next_box": _box_to_dict(tracking.next_box) if tracking.next_box else None,
        "last_seen": _box_to_dict(tracking.last_seen) if tracking.last_seen else None,
        "identity": signature_to_wire(identity) if identity is not None else None,
        "status": tracking.status.value,
        "doubts": tracking.doubts,
        "waiting": tracking.waiting,
        "chosen": tracking.chosen,
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
    """Tolerant of anything: a malformed box only costs a fresh detection, a malformed signature
    a fresh start at learning who the person is."""
    if not isinstance(data, dict):
        return Tracking()
    identity = signature_from_wire(data.get("identity"))
    return Tracking(
        next_box=_box(data.get("next_box")),
        last_seen=_box(data.get("last_seen")),
        identity=identity,
        status=_status(data.get("status"), identity is not None),
        doubts=_frames(data.get("doubts")),
        waiting=_frames(data.get("waiting")),
        chosen=data.get("chosen") is True,
    )


def _status(value: Any, has_identity: bool) -> IdentityStatus:
    """The stream's status; without a signature nothing is confirmed: learning starts again."""
    try:
        status = IdentityStatus(value)
    except ValueError:
        status = IdentityStatus.ENROLLING
    if not has_identity and status is IdentityStatus.CONFIRMED:
        return IdentityStatus.ENROLLING
    return status


def _frames(value: Any) -> int:
    """A count of frames (anything else: none)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1000:
        return value
    return 0


def _box(data: Any) -> RegionOfInterest | None:
    try:
        return RegionOfInterest(**{key: float(data[key]) for key in _BOX_FIELDS})
    except (TypeError, KeyError, ValueError):
        return None


_BOX_FIELDS = ("x_center", "y_center", "width", "height", "rotation")


class FrameServer:
    """The engine of one pose worker process, serving frames of many streams in turn, on the pose
    `runtime` the caller names (analysis.pose.engine RUNTIMES; the project's live default comes
    from the POSE_RUNTIME setting).

    Landmark smoothing is off: consecutive frames come from different streams, so the live
    tracker smooths each stream's angles instead. A MediaPipe graph that failed refuses every
    later packet, so after an unexpected error the engine is rebuilt and only that frame is lost.
    """

    def __init__(self, runtime: str = "mediapipe") -> None:
        self.runtime = runtime
        self.engine = PoseEngine(smooth=False, runtime=runtime)

    def serve(self, frame: bytes, timestamp_s: float, tracking: TrackingWire | None) -> PoseAnswer:
        try:
            return serve_frame(self.engine, frame, timestamp_s, tracking)
        except Exception:
            logger.exception("the pose engine failed on a frame; starting a fresh one")
            with contextlib.suppress(Exception):  # its graphs may be half-broken already
                self.engine.close()
            self.engine = PoseEngine(smooth=False, runtime=self.runtime)
            return {"error": "pose_failed", "message": "The pose service failed on this frame."}


def pin_to_cpu(index: int) -> int:
    """Keep this process on one CPU: the `index`-th (modulo) of those it may use. A worker left
    free to move shares every core with the others and with the web process, and the model's
    threads then wait for each other; pinned, each worker has a core of its own."""
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[index % len(cpus)]
    os.sched_setaffinity(0, {cpu})
    return cpu


# --- A process pool's initializer and task --------------------------------------------------------
_process_server: FrameServer | None = None


def start_process_server(started: Any = None, runtime: str = "mediapipe") -> None:
    """A pool process's engine on the pose `runtime`; `started`, a shared multiprocessing counter
    of the processes started so far, gives each its own CPU."""
    global _process_server
    if started is not None:
        with started.get_lock():
            index = started.value
            started.value += 1
        pin_to_cpu(index)
    _process_server = FrameServer(runtime)


def serve_frame_in_process(
    frame: bytes, timestamp_s: float, tracking: TrackingWire | None
) -> PoseAnswer:
    if _process_server is None:
        start_process_server()
    assert _process_server is not None  # nosec B101 # narrows the type: the line above set it
    return _process_server.serve(frame, timestamp_s, tracking)
