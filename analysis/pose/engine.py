"""Top-down BlazePose: find the patient's box, then the 33 landmarks on that box.

Two small MediaPipe graphs built from the calculators inside the mediapipe wheel: a person
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

import cv2
import numpy as np
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2
from mediapipe.framework.formats import rect_pb2
from mediapipe.python import packet_creator, packet_getter
from mediapipe.python._framework_bindings import (
    calculator_graph,
    image_frame,
    resource_util,
)

from analysis.pose.models import require_models
from analysis.pose.roi import (
    RegionOfInterest,
    center_distance,
    prominence,
    roi_from_keypoints,
)
from analysis.pose.types import Pose

_DETECTOR_GRAPH = """
input_stream: "image"
output_stream: "detections"
node {
  calculator: "PoseDetectionCpu"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:detections"
}
"""

# PoseLandmarkByRoiCpu emits nothing when its pose-presence score is below 0.5: that is "lost".
_LANDMARK_GRAPH = """
input_stream: "image"
input_stream: "roi"
output_stream: "landmarks"
output_stream: "auxiliary_landmarks"
output_stream: "world_landmarks"
node {
  calculator: "ConstantSidePacketCalculator"
  output_side_packet: "PACKET:0:model_complexity"
  output_side_packet: "PACKET:1:enable_segmentation"
  output_side_packet: "PACKET:2:smooth_landmarks"
  options {
    [mediapipe.ConstantSidePacketCalculatorOptions.ext] {
      packet { int_value: 1 }
      packet { bool_value: false }
      packet { bool_value: %(smooth)s }
    }
  }
}
node {
  calculator: "ImagePropertiesCalculator"
  input_stream: "IMAGE_CPU:image"
  output_stream: "SIZE:image_size"
}
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
  output_stream: "LANDMARKS:raw_landmarks"
  output_stream: "AUXILIARY_LANDMARKS:raw_auxiliary_landmarks"
  output_stream: "WORLD_LANDMARKS:raw_world_landmarks"
}
node {
  calculator: "PoseLandmarkFiltering"
  input_side_packet: "ENABLE:smooth_landmarks"
  input_stream: "IMAGE_SIZE:image_size"
  input_stream: "NORM_LANDMARKS:raw_landmarks"
  input_stream: "AUX_NORM_LANDMARKS:raw_auxiliary_landmarks"
  input_stream: "WORLD_LANDMARKS:raw_world_landmarks"
  output_stream: "FILTERED_NORM_LANDMARKS:landmarks"
  output_stream: "FILTERED_AUX_NORM_LANDMARKS:auxiliary_landmarks"
  output_stream: "FILTERED_WORLD_LANDMARKS:world_landmarks"
}
"""


class _Graph:
    """A started MediaPipe graph whose output packets are collected per call."""

    def __init__(self, config_text: str) -> None:
        config = text_format.Parse(config_text, calculator_pb2.CalculatorGraphConfig())
        self._graph = calculator_graph.CalculatorGraph(graph_config=config)
        self.outputs: dict[str, Any] = {}
        for stream in config.output_stream:
            self._graph.observe_output_stream(stream, self._collect, True)
        self._graph.start_run()
        self._last_timestamp_us = -1

    def _collect(self, stream: str, packet: Any) -> None:
        self.outputs[stream] = packet

    def run(self, inputs: dict[str, Any], timestamp_us: int) -> dict[str, Any]:
        # MediaPipe refuses a timestamp that is not greater than the graph's previous one (and
        # then fails for good). Frames of many streams, or one frame run twice (a lost person is
        # detected again and landmarked on the new box), must still go through.
        timestamp_us = max(timestamp_us, self._last_timestamp_us + 1)
        self._last_timestamp_us = timestamp_us
        self.outputs = {}
        for stream, packet in inputs.items():
            self._graph.add_packet_to_input_stream(stream=stream, packet=packet.at(timestamp_us))
        self._graph.wait_until_idle()
        return self.outputs

    def close(self) -> None:
        self._graph.close()


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
        self._detector = _Graph(_DETECTOR_GRAPH)
        self._landmarker = self._landmark_graph()
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
        self._landmarker = self._landmark_graph()

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
        rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        image = packet_creator.create_image_frame(
            image_format=image_frame.ImageFormat.SRGB, data=rgb
        )
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

    def _landmark_graph(self) -> _Graph:
        return _Graph(_LANDMARK_GRAPH % {"smooth": "true" if self._smooth else "false"})

    def _detect(
        self,
        image: Any,
        size: tuple[int, int],
        timestamp_us: int,
        last_seen: RegionOfInterest | None,
    ) -> RegionOfInterest | None:
        packets = self._detector.run({"image": image}, timestamp_us)
        if "detections" not in packets or packets["detections"].is_empty():
            return None
        boxes = []
        for detection in packet_getter.get_proto_list(packets["detections"]):
            keypoints = detection.location_data.relative_keypoints
            boxes.append(
                roi_from_keypoints(
                    (keypoints[0].x, keypoints[0].y), (keypoints[1].x, keypoints[1].y), *size
                )
            )
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
        roi = rect_pb2.NormalizedRect(
            x_center=box.x_center,
            y_center=box.y_center,
            width=box.width,
            height=box.height,
            rotation=box.rotation,
        )
        packets = self._landmarker.run(
            {"image": image, "roi": packet_creator.create_proto(roi)}, timestamp_us
        )
        if "landmarks" not in packets or packets["landmarks"].is_empty():
            return None
        landmarks = packet_getter.get_proto(packets["landmarks"]).landmark
        auxiliary = packet_getter.get_proto(packets["auxiliary_landmarks"]).landmark
        world = packet_getter.get_proto(packets["world_landmarks"]).landmark
        next_box = roi_from_keypoints(
            (auxiliary[0].x, auxiliary[0].y), (auxiliary[1].x, auxiliary[1].y), *size
        )
        image_xyz = np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float64)
        pose = Pose(
            pixels=image_xyz[:, :2] * np.array(size, dtype=np.float64),
            world=np.array([(p.x, p.y, p.z) for p in world], dtype=np.float64),
            visibility=np.array([p.visibility for p in landmarks], dtype=np.float64),
            image_size=size,
            depth=image_xyz[:, 2],
            tracked=tracked,
        )
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
