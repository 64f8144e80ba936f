"""`manage.py analyze_video` on real videos: the repetitions, the JSON contract, the landmark
exports and bad input."""

import contextlib
import json
import re
import subprocess
import sys
import zipfile
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pytest
import trc
from django.core.management import call_command
from django.core.management.base import CommandError
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from analysis.exercises import BY_SLUG, LIBRARY
from analysis.management.commands import analyze_video as analyze_video_command
from analysis.video import VideoAnalysisError, analyze_video, read_frames
from tests.analysis.test_exports import read_mot

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


# --- Landmark exports (--export, --out, --people; analysis.exports) -------------------------------


def _export_json(video: Path, fmt: str, out: Path, **options) -> dict:
    """The command run in this process with --json and an export; its one JSON object."""
    stdout = StringIO()
    call_command(
        "analyze_video",
        str(video),
        exercise="squat",
        json=True,
        export=fmt,
        out=str(out),
        stdout=stdout,
        **options,
    )
    return json.loads(stdout.getvalue())


def _same_analysis(with_export: dict, reps: int = 2, partials: int = 1, frames: int = 65) -> None:
    """The repetitions are counted as without an export: the front-view squat video's two squats
    and a partial one."""
    assert set(with_export) == CONTRACT_KEYS | {"export"}
    assert with_export["frames"] == frames and with_export["frames_with_pose"] == frames
    assert len(with_export["reps"]) == reps and with_export["partial_reps"] == partials


def test_with_a_coco_export_stdout_still_holds_exactly_one_json_object(tmp_path):
    out = tmp_path / "squats.json"
    result = _command(
        str(FIXTURES / "pose_squats.mp4"), "--exercise", "squat", "--json",
        "--export", "coco", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    analysis = json.loads(result.stdout)
    _same_analysis(analysis)
    assert analysis["export"] == {"format": "coco", "path": str(out), "people": 1}
    with contextlib.redirect_stdout(StringIO()):  # pycocotools prints its progress
        coco = COCO(str(out))
        evaluation = COCOeval(coco, coco.loadRes(coco.dataset["annotations"]), "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    assert len(coco.getImgIds()) == 65 and len(coco.getAnnIds()) == 65
    assert coco.loadImgs(0)[0] | {} == {
        "id": 0, "width": 720, "height": 1280, "file_name": "frame_000000.jpg",
    }  # fmt: skip


def test_the_openpose_export_is_one_file_per_frame_of_the_video(tmp_path):
    out = tmp_path / "keypoints.zip"
    analysis = _export_json(FIXTURES / "pose_squats.mp4", "openpose", out)
    _same_analysis(analysis)
    assert analysis["export"] == {"format": "openpose", "path": str(out), "people": 1}
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert names == [f"pose_squats_{i:012d}_keypoints.json" for i in range(65)]
        frame = json.loads(archive.read(names[40]))
    assert frame["version"] == 1.3 and len(frame["people"]) == 1
    body = frame["people"][0]["pose_keypoints_2d"]
    assert len(body) == 75 and all(0 <= value <= 1280 for value in body)


def test_the_trc_export_reads_back_with_trc_data_reader(tmp_path):
    out = tmp_path / "markers.trc"
    analysis = _export_json(FIXTURES / "pose_squats.mp4", "trc", out)
    _same_analysis(analysis)
    data = trc.TRCData()
    data.load(str(out))
    assert data["DataRate"] == 5.0 and data["NumFrames"] == 65 and data["NumMarkers"] == 33
    assert data["Units"] == "m" and data["Time"][-1] == pytest.approx(64 / 5.0)
    hips = np.array(data["left_hip"]) + np.array(data["right_hip"])
    assert np.allclose(hips, 0.0, atol=0.02)  # BlazePose's origin: between the hips
    assert (np.array(data["nose"])[:, 1] > 0.3).all()  # y up


def test_the_mot_export_has_the_squats_in_the_knee_angles(tmp_path):
    out = tmp_path / "angles.mot"
    analysis = _export_json(FIXTURES / "pose_squats.mp4", "mot", out)
    _same_analysis(analysis)
    mot = read_mot(out.read_text())
    assert mot.data.shape[0] == 65 and mot.header["inDegrees"] == "yes"
    for side in "rl":
        knee = mot.column(f"knee_angle_{side}")
        squats = np.count_nonzero((knee[:-1] < 50) & (knee[1:] >= 50))
        assert squats == 3  # two whole squats and the third, cut off on the way up
        assert np.nanmax(knee) > 85 and np.nanmin(knee) < 20


def test_an_export_keeps_frames_without_anybody_and_the_table_says_where_it_went(tmp_path):
    """Blank frames in the middle of the clip: nobody found there, the markers left empty."""
    video = FIXTURES / "pose_squats.mp4"
    frames = [frame for _, frame in read_frames(video, 5.0)][:12]
    blank = np.full_like(frames[0], 90)
    clip = _write_video(tmp_path / "gap.mp4", frames[:6] + [blank] * 3 + frames[6:], fps=5.0)
    out, stdout = tmp_path / "gap.trc", StringIO()
    call_command(
        "analyze_video", str(clip), exercise="squat", export="trc", out=str(out), stdout=stdout
    )
    assert stdout.getvalue().splitlines()[-1] == f"landmarks of 1 person written to {out} (trc)"
    data = trc.TRCData()
    data.load(str(out))
    assert data["NumFrames"] == 15
    empty = [frame for frame in range(15) if np.isnan(data[frame + 1][1]).all()]
    assert empty == [6, 7, 8]


LAB_CLIP = ROOT.parent / "shared" / "data" / "multiperson" / "pose2sim_multi_cam01.mp4"


@pytest.mark.skipif(not LAB_CLIP.is_file(), reason="needs ../shared/data/multiperson")
def test_people_all_exports_everyone_and_counts_the_one_exercising(tmp_path):
    """The lab clip: the patient moves beside a woman standing still and a bystander; every one
    is exported with their track id, and the repetitions are the patient's (track 2, whom the
    single-person analysis follows too)."""
    everyone = _export_json(LAB_CLIP, "coco", tmp_path / "everyone.json", people="all")
    patient = _export_json(LAB_CLIP, "coco", tmp_path / "patient.json")
    assert everyone["export"]["people"] == 3 and patient["export"]["people"] == 1
    annotations = json.loads((tmp_path / "everyone.json").read_text())["annotations"]
    assert {a["track_id"] for a in annotations} == {1, 2, 3}
    ours = [a for a in annotations if a["track_id"] == 2]
    alone = json.loads((tmp_path / "patient.json").read_text())["annotations"]
    firsts = (ours[0], alone[0])
    hips = [np.reshape(a["keypoints"], (17, 3))[11:13, :2].mean(axis=0) for a in firsts]
    assert np.linalg.norm(hips[0] - hips[1]) < 30  # the same person, in pixels


def test_people_all_runs_the_multi_person_tracker(tmp_path):
    video = FIXTURES / "pose_squats.mp4"
    clip = _write_video(
        tmp_path / "ten.mp4", [frame for _, frame in read_frames(video, 5.0)][:10], fps=5.0
    )
    out = tmp_path / "everyone.json"
    analysis = _export_json(clip, "openpose", out, people="all")
    assert analysis["frames"] == 10 and analysis["frames_with_pose"] == 10
    frames = json.loads(out.read_text())
    assert len(frames) == 10
    ids = {tuple(person["person_id"]) for frame in frames for person in frame["people"]}
    assert analysis["export"]["people"] == len(ids) >= 1
    assert all(track_id >= 1 for (track_id,) in ids)  # track_people's ids start at 1
    for frame in frames:
        in_frame = [person["person_id"][0] for person in frame["people"]]
        assert len(in_frame) == len(set(in_frame))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"export": "coco"}, "--export needs --out too"),
        ({"out": "x.json"}, "--out needs --export too"),
        ({"export": "bvh", "out": "x.bvh"}, "unknown export format 'bvh'; one of: coco, openpose"),
        ({"export": "coco", "out": "x.zip"}, "a coco export is written to a .json file"),
        ({"export": "trc", "out": "x.json"}, "a trc export is written to a .trc or .zip file"),
        ({"export": "mot", "out": "x"}, "not a name without one"),
        ({"export": "trc", "out": "x.trc", "people": "all"}, "give a .zip to --out"),
        ({"people": "all"}, "--people is for exports"),
        ({"export": "mot", "out": "missing/x.mot"}, "cannot write missing/x.mot: no such folder"),
        ({"export": "mot", "out": "taken.mot"}, "cannot write taken.mot: it is a folder"),
    ],
)
def test_an_export_that_cannot_be_written_as_asked_is_exit_code_2_before_any_pose(
    options, message, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.mot").mkdir()
    monkeypatch.setattr(analyze_video_command, "track_poses", _no_pose)
    monkeypatch.setattr(analyze_video_command, "analyze_video", _no_pose)
    with pytest.raises(CommandError, match=re.escape(message)) as error:
        call_command("analyze_video", str(FIXTURES / "pose_squats.mp4"), exercise="squat",
                     json=True, **options)  # fmt: skip
    assert error.value.returncode == 2
    assert [path.name for path in tmp_path.iterdir()] == ["taken.mot"]  # nothing written


def _no_pose(*args, **kwargs):
    raise AssertionError("the export was checked after pose had run")
