"""The two MediaPipe graphs of top-down BlazePose, built from the calculators inside the mediapipe
wheel, and what goes in and out of them: a person detector that gives one box per person, and
the landmark model run on one box.

Both the single-person engine (analysis.pose.engine) and the multi-person one use these.
"""

from typing import Any

import cv2
import numpy as np
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2
from mediapipe.framework.formats import rect_pb2
from mediapipe.python import packet_creator, packet_getter
from mediapipe.python._framework_bindings import calculator_graph, image_frame

from analysis.pose.roi import RegionOfInterest, roi_from_keypoints
from analysis.pose.types import Pose

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
