"""Top-down BlazePose: find the patient's box, then the 33 landmarks on that box.

Two small MediaPipe graphs (analysis.pose.graphs): a person
detector, run only on the first frame or when the person is lost, and the landmark model on a box
this module chooses. Choosing the box here (not inside MediaPipe's all-in-one pose graph) is what
lets the engine start on the largest, most central person and then keep following that person
when others walk into view. The landmark graph keeps MediaPipe's own landmark smoothing, which
also steadies the tracked box from frame to frame.

Usage::

    with PoseEngine() as engine:
        result = engine.process(frame_bgr, timestamp_s)   # Pose or None (nobody found)
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mediapipe.python._framework_bindings import resource_util

from analysis.pose.graphs import (
    DETECTOR_GRAPH,
    Graph,
    detect_boxes,
    image_packet,
    landmark_graph,
    landmarks_in_box,
)
from analysis.pose.models import require_models
from analysis.pose.roi import RegionOfInterest, center_distance, prominence
from analysis.pose.types import Pose

# Graph time between two frames of an engine without smoothing: long enough for every filter in
# MediaPipe's landmark graph to start afresh (int64 microseconds hold 1.5e11 such frames: years
# of a pose worker serving 1,000 frames a second).
UNRELATED_FRAMES_US = 60_000_000


@dataclass(frozen=True)
class Tracking:
    """Which person a stream follows: the box for its next frame (None: run the detector) and
    where the person was last seen (to take them back after a loss). A plain value, so that a
    stream's frames can be served by any engine, in any process."""

    next_box: RegionOfInterest | None = None
    last_seen: RegionOfInterest | None = None


class PoseEngine:
    """Follows one person through a stream of frames. Not thread-safe.

    `process` keeps the stream's Tracking itself (one engine per stream, as for a video file);
    `estimate` takes and returns it, for engines that serve many streams.
    """

    def __init__(self, *, smooth: bool = True, model_root: Path | None = None) -> None:
        resource_util.set_resource_dir(str(require_models(model_root)))
        self._smooth = smooth
        self._graph_time_us = 0
        self._detector = Graph(DETECTOR_GRAPH)
        self._landmarker = landmark_graph(smooth=self._smooth)
        self._tracking = Tracking()

    def __enter__(self) -> "PoseEngine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._detector.close()
        self._landmarker.close()

    def forget_person(self) -> None:
        """Start over: the next frame picks the most prominent person again."""
        self._tracking = Tracking()
        self._landmarker.close()
        self._landmarker = landmark_graph(smooth=self._smooth)

    def follow(self, box: RegionOfInterest) -> None:
        """Follow the person in `box` from the next frame on (someone chosen outside the engine:
        the one exercising among several, analysis.people.choose_patient)."""
        self.forget_person()
        self._tracking = Tracking(next_box=box, last_seen=box)

    def process(self, image_bgr: np.ndarray, timestamp_s: float) -> Pose | None:
        """Landmarks of the followed person in a BGR uint8 (H, W, 3) frame, or None if nobody is
        found. Timestamps are the frames' capture times; they drive the landmark smoothing."""
        result, self._tracking = self.estimate(image_bgr, timestamp_s, self._tracking)
        return result

    def estimate(
        self, image_bgr: np.ndarray, timestamp_s: float, tracking: Tracking
    ) -> tuple[Pose | None, Tracking]:
        """One frame of a stream whose tracking state is kept by the caller."""
        height, width = image_bgr.shape[:2]
        size = (width, height)
        timestamp_us = int(round(timestamp_s * 1e6)) if self._smooth else self._unrelated_frame_us()
        image = image_packet(image_bgr)
        if tracking.next_box is not None:
            found = self._landmarks(image, tracking.next_box, size, timestamp_us, tracked=True)
            if found is not None:
                return found
        box = self._detect(image, size, timestamp_us, tracking.last_seen)
        if box is None:
            return None, Tracking(last_seen=tracking.last_seen)
        found = self._landmarks(image, box, size, timestamp_us, tracked=False)
        return found or (None, Tracking(last_seen=tracking.last_seen))

    def _unrelated_frame_us(self) -> int:
        """A graph time for a frame unrelated to the last one (an engine without smoothing serves
        frames of many streams in turn). MediaPipe's landmark graph filters over time even with
        smoothing off: frames of one stream 67 ms after another's were pulled up to 58 % of the
        picture towards the other person's pose. Frames UNRELATED_FRAMES_US apart share nothing."""
        self._graph_time_us += UNRELATED_FRAMES_US
        return self._graph_time_us

    def _detect(
        self,
        image: Any,
        size: tuple[int, int],
        timestamp_us: int,
        last_seen: RegionOfInterest | None,
    ) -> RegionOfInterest | None:
        boxes = detect_boxes(self._detector, image, size, timestamp_us)
        return choose_person(boxes, size, last_seen)

    def _landmarks(
        self,
        image: Any,
        box: RegionOfInterest,
        size: tuple[int, int],
        timestamp_us: int,
        *,
        tracked: bool,
    ) -> tuple[Pose, Tracking] | None:
        found = landmarks_in_box(self._landmarker, image, box, size, timestamp_us, tracked=tracked)
        if found is None:
            return None
        pose, next_box = found
        return pose, Tracking(next_box=next_box, last_seen=box)


def choose_person(
    boxes: list[RegionOfInterest], size: tuple[int, int], last_seen: RegionOfInterest | None
) -> RegionOfInterest | None:
    """The detected person to follow: the one nearest to where ours was last seen, if close
    enough (lost for a moment), else the largest, most central one."""
    if not boxes:
        return None
    if last_seen is not None:
        nearest = min(boxes, key=lambda box: center_distance(box, last_seen, *size))
        if center_distance(nearest, last_seen, *size) < 0.5 * last_seen.pixel_size(size[0]):
            return nearest
    return max(boxes, key=lambda box: prominence(box, *size))
