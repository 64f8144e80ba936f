"""The pose runtime by numbers: MediaPipe's graphs against the same BlazePose models run directly by
LiteRT and by ONNX Runtime, on the same frames and one core.

    .venv/bin/python bench/pose_runtime.py [--video PATH] [--passes 5] [--core 0]

Runtimes (each with one thread, the process pinned to one core):
- mediapipe-engine: the project's PoseEngine(smooth=False).estimate with the stream's Tracking, as
  a live pose worker runs it (the identity checks included);
- mediapipe-graphs: the same two MediaPipe graphs in the bare tracking loop (landmarks on the box
  from the previous frame, the detector only when lost), the work the direct runtimes do;
- litert, onnxruntime: analysis.pose.blazepose on analysis.pose.runtimes' runners, same loop.

Speed: frames/s over the video's decoded frames fitted into 640x480 (what the live page sends),
the median of `passes` passes, each runtime in turn within a pass. Agreement, for each direct
runtime: on tests/fixtures/pose.jpg the largest coordinate difference from MediaPipe's own
reference landmarks (target < 15 px, as MediaPipe's test), and on the video at full size the
median over frames of each frame's median landmark distance from the MediaPipe graphs (target
<= 5 px); also the converted ONNX models' largest output difference from the .tflite ones on the
video's frames. Last line:
  fastest RUNTIME X fps/core (Y x MediaPipe graph), median landmark error Z px
where RUNTIME is the fastest direct runtime that meets both targets.
"""

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from mediapipe.python._framework_bindings import resource_util  # noqa: E402

from analysis.pose.blazepose import BlazePose, BoxTracking, Model  # noqa: E402
from analysis.pose.engine import PoseEngine, Tracking  # noqa: E402
from analysis.pose.graphs import (  # noqa: E402
    DETECTOR_GRAPH,
    UNRELATED_FRAMES_US,
    Graph,
    detect_boxes,
    image_packet,
    landmark_graph,
    landmarks_in_box,
)
from analysis.pose.models import require_models  # noqa: E402
from analysis.pose.roi import RegionOfInterest, prominence  # noqa: E402
from analysis.pose.runtimes import (  # noqa: E402
    DETECTOR,
    LANDMARKS,
    LiteRtModel,
    OnnxModel,
    litert_blazepose,
    onnx_blazepose,
    onnx_path,
    tflite_path,
)
from analysis.pose.types import Pose  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
PHOTO_TOLERANCE_PX = 15.0
VIDEO_TARGET_PX = 5.0
LIVE_SIZE = (640, 480)

# A frame in, its pose out; each keeps its stream's tracking state between calls.
Estimator = Callable[[np.ndarray], Pose | None]


class GraphLoop:
    """MediaPipe's two graphs in the bare tracking loop, frames unrelated in graph time (as in a
    pose worker: nothing is filtered across frames)."""

    def __init__(self) -> None:
        resource_util.set_resource_dir(str(require_models()))
        self._detector = Graph(DETECTOR_GRAPH)
        self._landmarker = landmark_graph(smooth=False)
        self._time_us = 0
        self._box: RegionOfInterest | None = None

    def __call__(self, image_bgr: np.ndarray) -> Pose | None:
        self._time_us += UNRELATED_FRAMES_US
        size = (image_bgr.shape[1], image_bgr.shape[0])
        image = image_packet(image_bgr)
        if self._box is not None:
            found = landmarks_in_box(
                self._landmarker, image, self._box, size, self._time_us, tracked=True
            )
            if found is not None:
                self._box = found[1]
                return found[0]
        boxes = detect_boxes(self._detector, image, size, self._time_us)
        self._box = None
        if not boxes:
            return None
        box = max(boxes, key=lambda each: prominence(each, *size))
        found = landmarks_in_box(self._landmarker, image, box, size, self._time_us, tracked=False)
        if found is None:
            return None
        self._box = found[1]
        return found[0]


class EngineLoop:
    """PoseEngine as a live pose worker runs it: the stream's Tracking goes in and out."""

    def __init__(self) -> None:
        self._engine = PoseEngine(smooth=False)
        self._tracking = Tracking()
        self._time_s = 0.0

    def __call__(self, image_bgr: np.ndarray) -> Pose | None:
        self._time_s += 1 / 15
        pose, self._tracking = self._engine.estimate(image_bgr, self._time_s, self._tracking)
        return pose


class DirectLoop:
    """analysis.pose.blazepose in tracking mode on one runtime's runners."""

    def __init__(self, pose: BlazePose) -> None:
        self._pose = pose
        self._tracking = BoxTracking()

    def __call__(self, image_bgr: np.ndarray) -> Pose | None:
        pose, self._tracking = self._pose.estimate(image_bgr, 0.0, self._tracking)
        return pose


DIRECT: dict[str, Callable[[], BlazePose]] = {
    "litert": litert_blazepose,
    "onnxruntime": onnx_blazepose,
}
RUNTIMES: dict[str, Callable[[], Estimator]] = {
    "mediapipe-engine": EngineLoop,
    "mediapipe-graphs": GraphLoop,
    "litert": lambda: DirectLoop(DIRECT["litert"]()),
    "onnxruntime": lambda: DirectLoop(DIRECT["onnxruntime"]()),
}


def read_video(path: Path) -> list[np.ndarray]:
    video = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while True:
        ok, frame = video.read()
        if not ok:
            return frames
        frames.append(frame)


def fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scaled to fit inside `size` (width, height), as the live page sends frames."""
    scale = min(size[0] / frame.shape[1], size[1] / frame.shape[0], 1.0)
    return cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def frames_per_s(make: Callable[[], Estimator], frames: list[np.ndarray]) -> float:
    estimate = make()
    estimate(frames[0])  # models loaded and warmed outside the clock
    estimate = make()  # a fresh stream: the first frame runs the detector, as live
    started = time.perf_counter()
    for frame in frames:
        estimate(frame)
    return len(frames) / (time.perf_counter() - started)


def poses(make: Callable[[], Estimator], frames: list[np.ndarray]) -> list[Pose | None]:
    estimate = make()
    return [estimate(frame) for frame in frames]


def photo_error_px(make: Callable[[], Estimator]) -> float:
    """Largest coordinate difference from MediaPipe's reference landmarks of pose.jpg."""
    reference = json.loads((FIXTURES / "pose_jpg_expected_mediapipe_landmarks.json").read_text())
    expected = np.array(
        reference["mediapipe_python_solutions_pose_test"]["expected_pose_landmarks_px_xy"]
    )
    pose = make()(cv2.imread(str(FIXTURES / "pose.jpg")))
    return float("inf") if pose is None else float(np.abs(pose.pixels - expected).max())


def video_error_px(ours: list[Pose | None], graphs: list[Pose | None]) -> float:
    """Median over frames of each frame's median landmark distance (a missed pose: infinite)."""
    per_frame = [
        float(np.median(np.linalg.norm(a.pixels - b.pixels, axis=1)))
        if a is not None and b is not None
        else (0.0 if a is None and b is None else float("inf"))
        for a, b in zip(ours, graphs, strict=True)
    ]
    return float(np.median(per_frame))


def conversion_error(frames: list[np.ndarray]) -> float:
    """Largest difference between the ONNX and the .tflite outputs that are used, on the tensors
    the tracking loop feeds the models over the video (the detector's and the landmark model's)."""
    pairs = [(LiteRtModel(tflite_path(m)), OnnxModel(onnx_path(m))) for m in (DETECTOR, LANDMARKS)]
    fed: list[tuple[int, np.ndarray]] = []

    def recorded(model: int) -> Model:
        def run(tensor: np.ndarray) -> dict[str, np.ndarray]:
            fed.append((model, tensor))
            return pairs[model][0](tensor)

        return run

    estimate = DirectLoop(BlazePose(recorded(0), recorded(1)))
    for frame in frames:
        estimate(frame)
    worst = 0.0
    for model, tensor in fed:
        tflite, onnx = (runner(tensor) for runner in pairs[model])
        for name in tflite.keys() - {"Identity_2"}:  # the segmentation mask is not used
            worst = max(worst, float(np.abs(tflite[name] - onnx[name]).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=FIXTURES / "pose_squats.mp4")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--core", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    cv2.setNumThreads(1)

    full = read_video(args.video)
    live = [fit(frame, LIVE_SIZE) for frame in full]
    height, width = live[0].shape[:2]
    print(f"video: {args.video.name}, {len(full)} frames; speed on {width}x{height}, "
          f"agreement at {full[0].shape[1]}x{full[0].shape[0]}")  # fmt: skip
    print(f"pinned to core {args.core}, one thread per runtime, {args.passes} passes\n")

    speeds: dict[str, list[float]] = {name: [] for name in RUNTIMES}
    for _ in range(args.passes):
        for name, make in RUNTIMES.items():
            speeds[name].append(frames_per_s(make, live))
    fps = {name: statistics.median(runs) for name, runs in speeds.items()}
    graphs_fps = fps["mediapipe-graphs"]
    print(f"{'runtime':20}{'fps/core':>10}{'ms/frame':>10}{'x graphs':>10}")
    for name, value in fps.items():
        print(f"{name:20}{value:10.1f}{1000 / value:10.1f}{value / graphs_fps:10.2f}")

    reference = poses(GraphLoop, full)
    print(f"\n{'agreement':20}{'pose.jpg max px':>17}{'video median px':>17}")
    agreement: dict[str, float] = {}
    for name in DIRECT:
        photo = photo_error_px(RUNTIMES[name])
        video = video_error_px(poses(RUNTIMES[name], full), reference)
        print(f"{name:20}{photo:17.2f}{video:17.2f}")
        if photo < PHOTO_TOLERANCE_PX and video <= VIDEO_TARGET_PX:
            agreement[name] = video
    print(f"targets: pose.jpg < {PHOTO_TOLERANCE_PX:.0f} px, video <= {VIDEO_TARGET_PX:.0f} px")
    print(
        f"ONNX vs .tflite outputs on the video: max abs difference {conversion_error(full):.2e}\n"
    )

    if not agreement:
        print("fastest none: no direct runtime meets both agreement targets")
        return
    best = max(agreement, key=lambda name: fps[name])
    ratio = fps[best] / graphs_fps
    print(
        f"fastest {best} {fps[best]:.1f} fps/core ({ratio:.2f} x MediaPipe graph), "
        f"median landmark error {agreement[best]:.2f} px"
    )


if __name__ == "__main__":
    main()
