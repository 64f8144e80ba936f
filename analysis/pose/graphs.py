"""The two MediaPipe graphs of top-down BlazePose, built from the calculators inside the mediapipe
wheel, and what goes in and out of them: a person detector that gives one box per person, and
the landmark model run on one box.

Both the single-person engine (analysis.pose.engine, through `GraphBackend`) and the multi-person
one use these.
"""

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2
from mediapipe.framework.formats import rect_pb2
from mediapipe.python import packet_creator, packet_getter
from mediapipe.python._framework_bindings import calculator_graph, image_frame, resource_util

from analysis.pose.roi import RegionOfInterest, roi_from_keypoints
from analysis.pose.types import Pose

# Graph time between two unrelated frames: long enough for every filter in MediaPipe's landmark
# graph to start afresh (int64 microseconds hold 1.5e11 such frames: years of a pose worker
# serving 1,000 frames a second).
UNRELATED_FRAMES_US = 60_000_000

DETECTOR_GRAPH = """
input_stream: "image"
output_stream: "detections"
node {
  calculator: "PoseDetectionCpu"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:detections"
}
"""

# PoseLandmarkByRoiCpu emits nothing when its pose-presence score is below 0.5: that is "lost".
LANDMARK_GRAPH = """
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


class Graph:
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


def image_packet(image_bgr: np.ndarray) -> Any:
    """A BGR uint8 (H, W, 3) frame as the graphs' RGB image packet."""
    rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    return packet_creator.create_image_frame(image_format=image_frame.ImageFormat.SRGB, data=rgb)


def detect_boxes(
    detector: Graph, image: Any, size: tuple[int, int], timestamp_us: int
) -> list[RegionOfInterest]:
    """One box per person the detector finds in the frame (`size` is (width, height))."""
    packets = detector.run({"image": image}, timestamp_us)
    if "detections" not in packets or packets["detections"].is_empty():
        return []
    boxes = []
    for detection in packet_getter.get_proto_list(packets["detections"]):
        keypoints = detection.location_data.relative_keypoints
        boxes.append(
            roi_from_keypoints(
                (keypoints[0].x, keypoints[0].y), (keypoints[1].x, keypoints[1].y), *size
            )
        )
    return boxes


def landmarks_in_box(
    landmarker: Graph,
    image: Any,
    box: RegionOfInterest,
    size: tuple[int, int],
    timestamp_us: int,
    *,
    tracked: bool,
) -> tuple[Pose, RegionOfInterest] | None:
    """The pose of the person in `box` and the box to look in on the next frame, or None when the
    landmark model finds no person there."""
    roi = rect_pb2.NormalizedRect(
        x_center=box.x_center,
        y_center=box.y_center,
        width=box.width,
        height=box.height,
        rotation=box.rotation,
    )
    packets = landmarker.run(
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
    return pose, next_box


def landmark_graph(*, smooth: bool) -> Graph:
    return Graph(LANDMARK_GRAPH % {"smooth": "true" if smooth else "false"})


class GraphBackend:
    """PoseEngine's backend on MediaPipe's graphs: the detector, the landmark graph of the person
    followed and, for people searched among everyone in view, a landmark graph without smoothing.

    With `smooth`, the followed person's landmarks are smoothed over the frames' capture times
    (MediaPipe's own filter, which also steadies the tracked box). Without it, every frame gets a
    graph time UNRELATED_FRAMES_US after the last: MediaPipe's landmark graph filters over time
    even with smoothing off, and frames of one stream 67 ms after another's were pulled up to
    58 % of the picture towards the other person's pose. Someone searched for is always a frame
    of its own. The image packet of a frame (or of a painted copy) is made once, for the
    detector and the landmark model alike.
    """

    def __init__(self, *, smooth: bool, model_root: Path) -> None:
        resource_util.set_resource_dir(str(model_root))
        self._smooth = smooth
        self._detector = Graph(DETECTOR_GRAPH)
        self._landmarker = landmark_graph(smooth=smooth)
        # Without smoothing the followed person's graph serves the searched ones too.
        self._searcher: Graph | None = None if smooth else self._landmarker
        self._graph_time_us = 0
        self._timestamp_us = 0
        self._packed: tuple[np.ndarray, Any] | None = None  # the last image and its packet

    def start_frame(self, timestamp_s: float) -> None:
        self._timestamp_us = (
            int(round(timestamp_s * 1e6)) if self._smooth else self._unrelated_frame_us()
        )
        self._packed = None

    def detect(self, image_bgr: np.ndarray) -> list[RegionOfInterest]:
        return detect_boxes(
            self._detector, self._packet(image_bgr), _size(image_bgr), self._timestamp_us
        )

    def landmarks(
        self,
        image_bgr: np.ndarray,
        box: RegionOfInterest,
        *,
        tracked: bool,
        searched: bool = False,
    ) -> tuple[Pose, RegionOfInterest] | None:
        graph, timestamp_us = self._landmarker, self._timestamp_us
        if searched:
            if self._searcher is None:
                self._searcher = landmark_graph(smooth=False)
            graph, timestamp_us = self._searcher, self._unrelated_frame_us()
        return landmarks_in_box(
            graph, self._packet(image_bgr), box, _size(image_bgr), timestamp_us, tracked=tracked
        )

    def restart(self) -> None:
        """A fresh smoothed landmark graph: its filters must not carry another person's frames
        into the next ones. (Without smoothing, frames are unrelated already.)"""
        if not self._smooth:
            return
        self._landmarker.close()
        self._landmarker = landmark_graph(smooth=True)

    def close(self) -> None:
        self._detector.close()
        self._landmarker.close()
        if self._searcher is not None and self._searcher is not self._landmarker:
            self._searcher.close()

    def _packet(self, image_bgr: np.ndarray) -> Any:
        if self._packed is None or self._packed[0] is not image_bgr:
            self._packed = (image_bgr, image_packet(image_bgr))
        return self._packed[1]

    def _unrelated_frame_us(self) -> int:
        self._graph_time_us += UNRELATED_FRAMES_US
        return self._graph_time_us


def _size(image: np.ndarray) -> tuple[int, int]:
    return image.shape[1], image.shape[0]
