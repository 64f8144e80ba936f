"""Model runners for analysis.pose.blazepose: the BlazePose models run directly by an inference
runtime, without MediaPipe's graphs.

A runner is a callable: an NHWC float32 input tensor in, the model's outputs out, by the names
the .tflite files give them ("Identity", "Identity_1", ...; the ONNX conversion keeps them).
Each runner uses one thread: a pose worker is one process per core, as with the MediaPipe graphs.

- LiteRT (ai-edge-litert, Google's runtime for .tflite, with its XNNPACK CPU kernels as in
  MediaPipe) runs the .tflite files inside the mediapipe wheel;
- ONNX Runtime runs their conversion in analysis/pose/onnx/ (tools/convert_pose_models.py).
"""

from pathlib import Path

import numpy as np
import onnxruntime
from ai_edge_litert.interpreter import Interpreter

from analysis.pose.blazepose import BlazePose
from analysis.pose.models import DETECTOR_MODEL, LANDMARK_MODEL, require_models

ONNX_DIR = Path(__file__).resolve().parent / "onnx"
DETECTOR = "pose_detection"
LANDMARKS = "pose_landmark_full"
TFLITE_MODELS = {DETECTOR: DETECTOR_MODEL, LANDMARKS: LANDMARK_MODEL}


def tflite_path(model: str, root: Path | None = None) -> Path:
    """The .tflite file inside the installed mediapipe wheel (or under `root`, as
    analysis.pose.models finds them: a missing file is a clear error)."""
    return require_models(root) / TFLITE_MODELS[model]


def onnx_path(model: str) -> Path:
    return ONNX_DIR / f"{model}.onnx"


class LiteRtModel:
    """A .tflite model on LiteRT's interpreter, one thread."""

    def __init__(self, path: Path) -> None:
        self._interpreter = Interpreter(model_path=str(path), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = {
            detail["name"]: detail["index"] for detail in self._interpreter.get_output_details()
        }

    def __call__(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        # get_tensor copies: the interpreter reuses its buffers on the next call.
        return {name: self._interpreter.get_tensor(index) for name, index in self._outputs.items()}


class OnnxModel:
    """An .onnx model on ONNX Runtime's CPU provider, one thread."""

    def __init__(self, path: Path) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self._session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]

    def __call__(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(None, {self._input: tensor}), strict=True))


def litert_blazepose(root: Path | None = None) -> BlazePose:
    return BlazePose(
        LiteRtModel(tflite_path(DETECTOR, root)), LiteRtModel(tflite_path(LANDMARKS, root))
    )


def onnx_blazepose() -> BlazePose:
    return BlazePose(OnnxModel(onnx_path(DETECTOR)), OnnxModel(onnx_path(LANDMARKS)))
