"""Convert the two BlazePose models of the mediapipe 0.10.21 wheel to ONNX, once.

    uv venv /tmp/convert -p 3.11
    uv pip install -p /tmp/convert "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "numpy<2"
    /tmp/convert/bin/python tools/convert_pose_models.py \
        --models .venv/lib/python3.11/site-packages/mediapipe/modules

tf2onnx and TensorFlow are heavy and are never dependencies of the project: they live in a
throwaway virtualenv. The outputs go to analysis/pose/onnx/ (committed, with their SHA-256 in its
README.md); the script prints the SHA-256 of its sources and outputs for that README.

The person detector keeps some weights sparse (DENSIFY ops, which tf2onnx cannot read, and on which
TensorFlow 2.15's interpreter crashes when listing tensors). Those weights are densified first: the
interpreter, without delegates, runs the model once and keeps every tensor, the dense weights it
produced become constant buffers and the DENSIFY ops go. The densified model gives the same outputs
bit for bit. Shapes are then read from the flatbuffer, not from an interpreter.
"""

import argparse
import hashlib
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import tensorflow as tf
import tf2onnx
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

MODELS = {
    "pose_detection": "pose_detection/pose_detection.tflite",
    "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite",
}
OPSET = 13
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "analysis" / "pose" / "onnx"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def densified(source: Path, target: Path) -> int:
    """Write `source` with its sparse weights made dense; the number of DENSIFY ops removed."""
    model = flatbuffer_utils.read_model(str(source))
    interpreter = tf.lite.Interpreter(
        model_path=str(source),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    (tensor_input,) = interpreter.get_input_details()
    interpreter.set_tensor(tensor_input["index"], np.zeros(tensor_input["shape"], np.float32))
    interpreter.invoke()  # DENSIFY writes its constant output on the first run
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    graph = model.subgraphs[0]
    kept = []
    for op in graph.operators:
        if codes[op.opcodeIndex] != schema.BuiltinOperator.DENSIFY:
            kept.append(op)
            continue
        dense = interpreter.get_tensor(op.outputs[0])
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(dense.tobytes(), np.uint8)
        model.buffers.append(buffer)
        graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
        # The sparse input is now unused; as a plain 1-D tensor it no longer trips the readers.
        sparse = graph.tensors[op.inputs[0]]
        sparse.sparsity = None
        sparse.shape = [len(model.buffers[sparse.buffer].data) // dense.dtype.itemsize]
    removed = len(graph.operators) - len(kept)
    graph.operators = kept
    flatbuffer_utils.write_model(model, str(target))
    return removed


def _no_interpreter(*args: object, **kwargs: object) -> None:
    raise RuntimeError("shapes are read from the flatbuffer")


def convert(source: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        dense = Path(scratch) / source.name
        print(f"  {densified(source, dense)} DENSIFY ops made constant")
        # tf2onnx asks an interpreter for tensor shapes and falls back to the flatbuffer's when
        # that fails; asking crashes TensorFlow 2.15 on these models.
        with mock.patch.object(tf.lite, "Interpreter", _no_interpreter):
            tf2onnx.convert.from_tflite(str(dense), opset=OPSET, output_path=str(target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="mediapipe/modules folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, relative in MODELS.items():
        source, target = args.models / relative, args.out / f"{name}.onnx"
        print(f"{source} -> {target}")
        convert(source, target)
        print(f"  sha256 source {sha256(source)}\n  sha256 output {sha256(target)}")


if __name__ == "__main__":
    main()
