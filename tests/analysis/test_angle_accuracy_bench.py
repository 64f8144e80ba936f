"""bench/angle_accuracy.py: its summary line on the real annotated photos, clear errors for bad
files."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYPOINTS = ROOT.parent / "shared" / "data" / "keypoints_gt"
SUMMARY = re.compile(
    r"good-grade angle MAE \d+\.\d deg \(\d+\), P90 \d+\.\d; all MAE \d+\.\d \(\d+\)"
)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "angle_accuracy", ROOT / "bench" / "angle_accuracy.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not KEYPOINTS.is_dir(), reason="needs ../shared/data/keypoints_gt")
def test_it_scores_the_annotated_photos_and_ends_on_the_summary_line(bench, capsys):
    assert bench.main([]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert SUMMARY.fullmatch(lines[-1])
    assert any(line.startswith("angles in full view graded good: ") for line in lines)
    assert sum(line.strip().startswith("grade ") for line in lines) == 3


def test_a_missing_file_is_a_clear_error(bench, tmp_path, capsys):
    assert bench.main(["--coco", str(tmp_path / "absent.json")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option, content, message",
    [
        ("--coco", "{not json", "not JSON"),
        ("--coco", json.dumps({"images": []}), "not a COCO keypoint file"),
        ("--mpii", json.dumps([{"image": "a.jpg", "joints": [[0, 0]] * 15}]), "not an MPII"),
    ],
)
def test_a_malformed_file_is_a_clear_error(bench, tmp_path, capsys, option, content, message):
    path = tmp_path / "keypoints.json"
    path.write_text(content)
    assert bench.main([option, str(path)]) == 2
    assert message in capsys.readouterr().err


def test_a_coco_file_with_other_keypoints_is_refused(bench, tmp_path, capsys):
    path = tmp_path / "keypoints.json"
    annotation = {"image_id": 1, "keypoints": [0] * 16 * 3, "bbox": [0, 0, 10, 10], "id": 7}
    path.write_text(
        json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [annotation]})
    )
    assert bench.main(["--coco", str(path)]) == 2
    assert "not 17*3" in capsys.readouterr().err
