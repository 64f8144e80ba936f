from pathlib import Path
from typing import Any

import cv2
import pytest

SQUAT_VIDEO = Path(__file__).resolve().parents[1] / "fixtures" / "squat_side_rohanx01.mp4"


@pytest.fixture(autouse=True)
def upload_dir(settings: Any, tmp_path: Path) -> Path:
    """Each test's uploads in a folder of its own."""
    settings.UPLOAD_DIR = tmp_path / "uploads"
    return settings.UPLOAD_DIR


@pytest.fixture(scope="session")
def squat_frames() -> list[tuple[float, bytes]]:
    """(capture ms, JPEG) of the side-view squat video at 15 frames/s, fitted into 640x480 as the
    page sends them."""
    capture = cv2.VideoCapture(str(SQUAT_VIDEO))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames, index = [], 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % round(fps / 15) == 0:
            scale = min(640 / image.shape[1], 480 / image.shape[0])
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
            frames.append((index / fps * 1000, jpeg))
        index += 1
    capture.release()
    return frames
