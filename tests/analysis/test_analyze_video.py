"""`manage.py analyze_video` on real videos: the repetitions, the JSON contract and bad input."""

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.management import call_command

from analysis.exercises import BY_SLUG, LIBRARY
from analysis.video import VideoAnalysisError, analyze_video, read_frames

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CONTRACT_KEYS = {
    "exercise",
    "side",
    "frames",
    "fps_video",
    "fps_processed",
    "frames_with_pose",
    "reps",
    "partial_reps",
}
REP_KEYS = {
    "index",
    "start_s",
    "end_s",
    "min_deg",
    "max_deg",
    "rom_deg",
    "duration_s",
    "peak_velocity_dps",
    "form_flags",
}


def _command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "analyze_video", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """The first 20 frames of the front-view squat video."""
    video = FIXTURES / "pose_squats.mp4"
    frames = [frame for _, frame in read_frames(video, 5.0)][:20]
    return _write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames, fps=5.0)


def test_the_front_view_squat_video_has_two_squats_and_one_partial():
    result = _command(str(FIXTURES / "pose_squats.mp4"), "--exercise", "squat", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # MediaPipe's native logging does not leak into the contract
    analysis = json.loads(result.stdout)  # exactly one JSON object, nothing else
    assert set(analysis) == CONTRACT_KEYS
    assert analysis["exercise"] == "squat" and analysis["side"] in ("left", "right")
    assert analysis["frames"] == 65 and analysis["frames_with_pose"] == 65
    assert analysis["fps_video"] == pytest.approx(5.0)
    assert len(analysis["reps"]) == 2 and analysis["partial_reps"] == 1
    for rep in analysis["reps"]:
        assert set(rep) >= REP_KEYS
        assert rep["rom_deg"] == pytest.approx(rep["max_deg"] - rep["min_deg"], abs=0.11)
    # Bottoms near frames 9-10 and 33-34 (5 fps).
    bottoms = [rep["start_s"] + rep["eccentric_s"] for rep in analysis["reps"]]
    assert bottoms == pytest.approx([1.9, 6.7], abs=0.5)


def test_the_side_view_gym_video_has_two_squats():
    analysis = analyze_video(FIXTURES / "squat_side_rohanx01.mp4", BY_SLUG["squat"])
    assert analysis.frames == 614 and analysis.frames_with_pose > 600
    # He faces the right of the picture: his right side is the one facing the camera.
    assert analysis.side == "right"
    assert len(analysis.reps) == 2
    bottoms = [rep.start_s + (rep.eccentric_s or 0.0) for rep in analysis.reps]
    assert bottoms == pytest.approx([10.5, 17.3], abs=0.7)
    for rep in analysis.reps:
        assert rep.max_deg > 90 and rep.rom_deg > 80


def test_the_readable_table_lists_the_repetitions(short_clip):
    out, err = StringIO(), StringIO()
    call_command(
        "analyze_video", str(FIXTURES / "pose_squats.mp4"), exercise="squat", stdout=out, stderr=err
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("squat, ") and "2 repetitions, 1 partial" in lines[0]
    assert lines[3].split()[:2] == ["rep", "side"]
    assert [line.split()[0] for line in lines[4:]] == ["1", "2"]


@pytest.mark.parametrize("exercise", [exercise.slug for exercise in LIBRARY])
def test_every_exercise_of_the_library_can_be_analysed(exercise, short_clip):
    out = StringIO()
    call_command("analyze_video", str(short_clip), exercise=exercise, json=True, stdout=out)
    analysis = json.loads(out.getvalue())
    assert analysis["exercise"] == exercise and analysis["frames"] == 20
    assert analysis["side"] in ("left", "right")


def test_an_unknown_exercise_is_one_line_on_stderr_and_exit_code_2():
    result = _command(str(FIXTURES / "pose_squats.mp4"), "--exercise", "cartwheel", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "unknown exercise 'cartwheel'" in result.stderr


def test_a_missing_or_unreadable_file_is_exit_code_2(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(50_000))
    for path, message in ((tmp_path / "missing.mp4", "no such file"), (garbage, "cannot read")):
        result = _command(str(path), "--exercise", "squat", "--json")
        assert result.returncode == 2 and result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_a_video_with_nobody_in_it_is_exit_code_2(tmp_path):
    empty_room = [np.full((240, 320, 3), 40 + i, dtype=np.uint8) for i in range(10)]
    path = _write_video(tmp_path / "empty_room.mp4", empty_room)
    result = _command(str(path), "--exercise", "squat", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "CommandError: no person found in empty_room.mp4\n"
    with pytest.raises(VideoAnalysisError, match="no person"):
        analyze_video(path, BY_SLUG["squat"])
