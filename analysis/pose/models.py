"""Where the BlazePose models live: inside the installed mediapipe 0.10.21 wheel, never downloaded.

Only the *full* landmark model ships in the wheel (lite and heavy would try a download and fail),
so the engine uses exactly these two .tflite files, whichever runtime runs them (MediaPipe's
graphs, or LiteRT directly: analysis.pose.engine), and checks for them before either starts: a
missing file must be a clear error naming it, not a crash deep inside a runtime.
"""

from pathlib import Path

import mediapipe

MEDIAPIPE_ROOT = Path(mediapipe.__file__).resolve().parent
# Relative to the directory that contains the `mediapipe` package, as MediaPipe's graphs expect.
DETECTOR_MODEL = Path("mediapipe/modules/pose_detection/pose_detection.tflite")
LANDMARK_MODEL = Path("mediapipe/modules/pose_landmark/pose_landmark_full.tflite")


class PoseModelMissingError(RuntimeError):
    pass


def resource_root() -> Path:
    """The directory MediaPipe resolves model paths against (site-packages)."""
    return MEDIAPIPE_ROOT.parent


def require_models(root: Path | None = None) -> Path:
    """Return the resource root after checking that both model files are in it."""
    root = root or resource_root()
    for relative in (DETECTOR_MODEL, LANDMARK_MODEL):
        path = root / relative
        if not path.is_file():
            raise PoseModelMissingError(
                f"BlazePose model file not found: {path}. It ships inside the mediapipe==0.10.21 "
                "wheel; reinstall the environment with `make install` (nothing is downloaded)."
            )
    return root
