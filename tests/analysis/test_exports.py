"""Landmark exports (analysis.exports), read back with each ecosystem's own reader: pycocotools for
COCO, trc-data-reader for OpenSim markers, a small .mot parser (checked first on a real OpenSim
file) for joint angles; OpenPose's files against its published output layout. The landmarks are
real BlazePose poses of a short clip; the joint angles are also checked on synthetic skeletons
with exact answers."""

import contextlib
import io
import itertools
import json
import re
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import trc
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from analysis.exercises import KNEE_FLEXION, AngleSpace
from analysis.exports import (
    BODY_25,
    COCO_FROM_BLAZEPOSE,
    COCO_KEYPOINTS,
    FORMATS,
    TRC_MARKERS,
    ExportError,
    export_bytes,
    joint_angles_deg,
    opensim_markers,
    tracks_from_npz,
    tracks_to_npz,
    write_export,
)
from analysis.kinematics import MIN_VISIBILITY, PoseSeries, joint_angle_deg
from analysis.landmarks import Landmark
from analysis.people import PersonTrack
from analysis.video import read_frames, track_poses

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VIDEO = FIXTURES / "pose_squats.mp4"
IMAGE_SIZE = (720, 1280)  # pose_squats.mp4: portrait, width x height
FPS = 5.0
FRAMES = 20
MISSING = (3, 4, 11)  # frames made empty, as track_poses leaves a frame where nobody was found


# --- Real poses, once per module ------------------------------------------------------------------


@pytest.fixture(scope="module")
def poses() -> PoseSeries:
    """BlazePose on the first 20 frames (4 s) of the front-view squat video: the first squat."""
    series, found = track_poses(itertools.islice(read_frames(VIDEO, FPS), FRAMES))
    assert found == FRAMES
    return series


@pytest.fixture(scope="module")
def gappy(poses) -> PoseSeries:
    """The same poses with the person lost in a few frames (NaN rows, zero visibility)."""
    pixels, world, visibility = poses.pixels.copy(), poses.world.copy(), poses.visibility.copy()
    pixels[list(MISSING)] = np.nan
    world[list(MISSING)] = np.nan
    visibility[list(MISSING)] = 0.0
    return PoseSeries(t_s=poses.t_s, pixels=pixels, world=world, visibility=visibility)


@pytest.fixture(scope="module")
def two_people(poses, gappy) -> list[PersonTrack]:
    """Two tracks of one video: the patient and a second person 200 px to the left."""
    shifted = replace(gappy, pixels=gappy.pixels - np.array([200.0, 0.0]))
    return [PersonTrack(track_id=4, poses=poses), PersonTrack(track_id=9, poses=shifted)]


def _export(tracks, fmt: str, suffix: str | None = None) -> bytes:
    content, _, _ = export_bytes(
        tracks, fmt, image_size=IMAGE_SIZE, fps=FPS, name="pose_squats", suffix=suffix
    )
    return content


# --- COCO keypoints -------------------------------------------------------------------------------


def test_the_coco_keypoints_are_blazeposes_landmarks_of_the_same_name():
    assert COCO_FROM_BLAZEPOSE == (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
    assert len(COCO_KEYPOINTS) == 17


def _coco(path: Path) -> tuple[COCO, COCOeval]:
    """The file loaded by pycocotools and evaluated against itself (keypoints, OKS)."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground_truth = COCO(str(path))
        results = ground_truth.loadRes(ground_truth.dataset["annotations"])
        evaluation = COCOeval(ground_truth, results, iouType="keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return ground_truth, evaluation


def test_the_coco_file_loads_in_pycocotools_and_scores_ap_1_against_itself(poses, tmp_path):
    path = tmp_path / "squats.json"
    write_export([PersonTrack(0, poses)], "coco", path, image_size=IMAGE_SIZE, fps=FPS, name="x")
    coco, evaluation = _coco(path)
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP at OKS .50:.95
    assert sorted(coco.getImgIds()) == list(range(FRAMES))
    image = coco.loadImgs(12)[0]
    assert image == {"id": 12, "width": 720, "height": 1280, "file_name": "frame_000012.jpg"}
    (category,) = coco.loadCats(coco.getCatIds())
    assert category["name"] == "person" and category["keypoints"] == list(COCO_KEYPOINTS)
    assert [16, 14] in category["skeleton"] and len(category["skeleton"]) == 19
    assert len(coco.getAnnIds()) == FRAMES  # the patient in every frame


def test_a_coco_annotation_holds_the_landmarks_in_pixels_with_cocos_visibility_flag(poses):
    dataset = json.loads(_export([PersonTrack(0, poses)], "coco"))
    annotation = next(a for a in dataset["annotations"] if a["image_id"] == 7)
    keypoints = np.array(annotation["keypoints"], dtype=float).reshape(17, 3)
    expected = poses.pixels[7, list(COCO_FROM_BLAZEPOSE)]
    flags = keypoints[:, 2]
    labelled = flags > 0
    assert np.allclose(keypoints[labelled, :2], expected[labelled], atol=0.01)
    assert (keypoints[~labelled, :2] == 0).all()
    seen = poses.visibility[7, list(COCO_FROM_BLAZEPOSE)]
    assert ((flags == 2) == (labelled & (seen >= MIN_VISIBILITY))).all()
    assert annotation["num_keypoints"] == int(labelled.sum()) > 10
    x, y, w, h = annotation["bbox"]
    assert x >= 0 and y >= 0 and x + w <= 720.01 and y + h <= 1280.01
    inside = keypoints[labelled, :2]
    assert (inside[:, 0] >= x - 0.01).all() and (inside[:, 0] <= x + w + 0.01).all()
    assert annotation["area"] == pytest.approx(w * h, rel=1e-3)
    assert annotation["iscrowd"] == 0 and annotation["category_id"] == 1
    assert 0 < annotation["score"] <= 1


def test_coco_leaves_frames_without_the_person_unannotated_but_keeps_their_images(gappy, tmp_path):
    path = tmp_path / "gappy.json"
    path.write_bytes(_export([PersonTrack(0, gappy)], "coco"))
    coco, evaluation = _coco(path)
    assert len(coco.getImgIds()) == FRAMES
    annotated = {a["image_id"] for a in coco.dataset["annotations"]}
    assert annotated == set(range(FRAMES)) - set(MISSING)
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_coco_of_every_person_has_one_annotation_per_person_per_frame(two_people, tmp_path):
    path = tmp_path / "people.json"
    path.write_bytes(_export(two_people, "coco"))
    coco, evaluation = _coco(path)
    assert evaluation.stats[0] == pytest.approx(1.0)
    annotations = coco.dataset["annotations"]
    assert len(annotations) == 2 * FRAMES - len(MISSING)
    assert {a["track_id"] for a in annotations} == {4, 9}
    assert len({a["id"] for a in annotations}) == len(annotations)
    assert min(a["id"] for a in annotations) >= 1
    assert len(coco.getAnnIds(imgIds=[3])) == 1 and len(coco.getAnnIds(imgIds=[5])) == 2


# --- OpenPose BODY_25 -----------------------------------------------------------------------------

BODY_25_ORDER = [
    *("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip"),
    *("RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar"),
    *("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"),
]
# The keys of one person in OpenPose's --write_json output (version 1.3), in its order.
OPENPOSE_PERSON_KEYS = [
    "person_id",
    "pose_keypoints_2d",
    "face_keypoints_2d",
    "hand_left_keypoints_2d",
    "hand_right_keypoints_2d",
    "pose_keypoints_3d",
    "face_keypoints_3d",
    "hand_left_keypoints_3d",
    "hand_right_keypoints_3d",
]


def _openpose_zip(content: bytes) -> dict[str, dict]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: json.loads(archive.read(name)) for name in archive.namelist()}


def test_openpose_writes_one_file_per_frame_named_as_openpose_does(poses):
    files = _openpose_zip(_export([PersonTrack(0, poses)], "openpose", ".zip"))
    assert sorted(files) == [f"pose_squats_{i:012d}_keypoints.json" for i in range(FRAMES)]
    frame = files["pose_squats_000000000005_keypoints.json"]
    assert list(frame) == ["version", "people"] and frame["version"] == 1.3
    (person,) = frame["people"]
    assert list(person) == OPENPOSE_PERSON_KEYS and person["person_id"] == [0]
    assert all(person[key] == [] for key in OPENPOSE_PERSON_KEYS[2:])


def test_body_25_points_are_blazepose_landmarks_midpoints_or_undetected(poses):
    assert [name for name, _ in BODY_25] == BODY_25_ORDER
    files = _openpose_zip(_export([PersonTrack(0, poses)], "openpose"))
    frame = files["pose_squats_000000000005_keypoints.json"]
    body = np.array(frame["people"][0]["pose_keypoints_2d"], dtype=float).reshape(25, 3)
    pixels, seen = poses.pixels[5], poses.visibility[5]
    part = {name: body[i] for i, name in enumerate(BODY_25_ORDER)}
    assert np.allclose(part["Nose"][:2], pixels[Landmark.NOSE], atol=1e-3)
    assert part["Nose"][2] == pytest.approx(seen[Landmark.NOSE], abs=1e-4)
    assert np.allclose(part["RKnee"][:2], pixels[Landmark.RIGHT_KNEE], atol=1e-3)
    assert np.allclose(part["LBigToe"][:2], pixels[Landmark.LEFT_FOOT_INDEX], atol=1e-3)
    assert np.allclose(part["RHeel"][:2], pixels[Landmark.RIGHT_HEEL], atol=1e-3)
    shoulders = pixels[[Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER]]
    assert np.allclose(part["Neck"][:2], shoulders.mean(axis=0), atol=1e-3)
    hips = pixels[[Landmark.LEFT_HIP, Landmark.RIGHT_HIP]]
    assert np.allclose(part["MidHip"][:2], hips.mean(axis=0), atol=1e-3)
    assert part["MidHip"][2] == pytest.approx(seen[[23, 24]].min(), abs=1e-4)
    assert (part["LSmallToe"] == 0).all() and (part["RSmallToe"] == 0).all()


def test_openpose_as_one_json_array_holds_the_same_frames_as_the_zip(gappy):
    as_array = json.loads(_export([PersonTrack(0, gappy)], "openpose", ".json"))
    files = _openpose_zip(_export([PersonTrack(0, gappy)], "openpose", ".zip"))
    assert as_array == [files[name] for name in sorted(files)]
    for frame in MISSING:  # nobody found: OpenPose's file for the frame lists no people
        assert as_array[frame] == {"version": 1.3, "people": []}


def test_openpose_of_every_person_keeps_their_track_ids(two_people):
    frames = json.loads(_export(two_people, "openpose", ".json"))
    assert [p["person_id"] for p in frames[5]["people"]] == [[4], [9]]
    assert [p["person_id"] for p in frames[MISSING[0]]["people"]] == [[4]]


# --- OpenSim .trc ---------------------------------------------------------------------------------


def _read_trc(path: Path) -> trc.TRCData:
    data = trc.TRCData()
    data.load(str(path))
    return data


def test_the_trc_file_reads_back_with_trc_data_reader_in_opensims_frame(poses, tmp_path):
    path = tmp_path / "squats.trc"
    write_export([PersonTrack(0, poses)], "trc", path, image_size=IMAGE_SIZE, fps=FPS, name="sq")
    data = _read_trc(path)
    assert data["PathFileType"] == "4" and data["DataFormat"] == "(X/Y/Z)"
    assert data["FileName"] == "sq.trc"
    assert data["DataRate"] == FPS and data["CameraRate"] == FPS and data["OrigDataRate"] == FPS
    assert data["NumFrames"] == FRAMES == data["OrigNumFrames"] and data["OrigDataStartFrame"] == 1
    assert data["NumMarkers"] == 33 and data["Units"] == "m"
    assert data["Markers"] == list(TRC_MARKERS) and data["Frame#"] == list(range(1, FRAMES + 1))
    assert np.allclose(data["Time"], poses.t_s, atol=1e-6)
    expected = opensim_markers(poses.world)
    for index, marker in enumerate(TRC_MARKERS):
        assert np.allclose(np.array(data[marker]), expected[:, index], atol=1e-6), marker
    # y up: the head above the hips (the origin), the ankles below.
    assert (np.array(data["nose"])[:, 1] > 0.3).all()
    assert (np.array(data["left_ankle"])[:, 1] < -0.3).all()  # in the squat too


def test_the_opensim_frame_is_blazepose_turned_half_way_about_x(poses):
    world = poses.world[0]
    markers = opensim_markers(world)
    assert np.allclose(markers, world * [1, -1, -1])
    # A rotation (determinant +1), not a mirror image: the frame stays right-handed.
    assert np.linalg.det(np.diag([1.0, -1.0, -1.0])) == pytest.approx(1.0)


def test_trc_frames_without_a_pose_leave_every_marker_empty(gappy, tmp_path):
    path = tmp_path / "gappy.trc"
    path.write_bytes(_export([PersonTrack(0, gappy)], "trc"))
    data = _read_trc(path)
    assert data["NumFrames"] == FRAMES and len(data["Time"]) == FRAMES
    for frame in range(FRAMES):
        _, coordinates = data[frame + 1]
        assert np.isnan(coordinates).all() == (frame in MISSING)
    # OpenSim's reader splits rows at tabs and needs 2 + 3 x 33 fields on every row, empty or not;
    # like OpenSim's own writer, every row ends with a tab.
    rows = path.read_text().splitlines()[6:]
    assert len(rows) == FRAMES
    for row in rows:
        assert row.endswith("\t") and len(row[:-1].split("\t")) == 2 + 3 * 33
    assert rows[MISSING[0]].split("\t")[2:] == [""] * (3 * 33 + 1)


# --- OpenSim .mot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotFile:
    name: str
    header: dict[str, str]
    columns: list[str]
    data: np.ndarray  # (nRows, nColumns)

    def column(self, name: str) -> np.ndarray:
        return self.data[:, self.columns.index(name)]


def read_mot(text: str) -> MotFile:
    """An OpenSim storage file (.mot/.sto, version 1): a name line, `key=value` lines (and free
    text) up to `endheader`, a tab-separated line of column labels, then rows of numbers separated
    by white space. Checks the counts the header states."""
    lines = text.splitlines()
    end = next(i for i, line in enumerate(lines) if line.strip() == "endheader")
    header = {}
    for line in lines[1:end]:
        match = re.fullmatch(r"\s*(\w+)=(.*)", line)
        if match:
            header[match[1]] = match[2].strip()
    columns = [label.strip() for label in lines[end + 1].split("\t") if label.strip()]
    rows = [[float(value) for value in line.split()] for line in lines[end + 2 :] if line.strip()]
    assert all(len(row) == len(columns) for row in rows)
    assert len(rows) == int(header["nRows"]) and len(columns) == int(header["nColumns"])
    return MotFile(lines[0].strip(), header, columns, np.array(rows))


def test_the_mot_parser_reads_a_real_opensim_file():
    mot = read_mot((FIXTURES / "squats1_videoAndMocap.mot").read_text())
    assert mot.name == "Coordinates" and mot.header["version"] == "1"
    assert mot.header["inDegrees"] == "yes" and mot.data.shape == (801, 36)
    assert mot.columns[0] == "time" and "knee_angle_r" in mot.columns
    assert mot.column("time")[[0, -1]] == pytest.approx([0.0, 8.0])
    knee = mot.column("knee_angle_r")
    assert knee.min() == pytest.approx(0.296, abs=1e-3) and knee.max() == pytest.approx(
        86.97, abs=0.01
    )
    squats = np.count_nonzero((knee[:-1] < 45) & (knee[1:] >= 45))
    assert squats == 5


MOT_COLUMNS = [
    "time",
    *(f"{name}_r" for name in ("hip_flexion", "hip_adduction", "knee_angle", "ankle_angle")),
    *(f"{name}_l" for name in ("hip_flexion", "hip_adduction", "knee_angle", "ankle_angle")),
    *(f"{name}_r" for name in ("arm_flex", "arm_add", "elbow_flex")),
    *(f"{name}_l" for name in ("arm_flex", "arm_add", "elbow_flex")),
]


def test_the_mot_export_reads_back_as_the_joint_angles(poses, tmp_path):
    path = tmp_path / "squats.mot"
    write_export([PersonTrack(0, poses)], "mot", path, image_size=IMAGE_SIZE, fps=FPS, name="sq")
    mot = read_mot(path.read_text())
    assert mot.name == "sq" and mot.header == {
        "version": "1",
        "nRows": str(FRAMES),
        "nColumns": str(len(MOT_COLUMNS)),
        "inDegrees": "yes",
    }
    assert mot.columns == MOT_COLUMNS
    assert np.allclose(mot.column("time"), poses.t_s, atol=1e-6)
    angles = joint_angles_deg(poses)
    for name, values in angles.items():
        assert np.allclose(mot.column(name), values, atol=1e-3, equal_nan=True), name
    # The knee is analysis.exercises' knee flexion, from the world landmarks.
    for side in ("left", "right"):
        knee = joint_angle_deg(poses, KNEE_FLEXION, side, AngleSpace.WORLD_3D)
        assert np.allclose(mot.column(f"knee_angle_{side[0]}"), knee, atol=1e-3, equal_nan=True)
    # The clip holds the first squat: the knees bend from near straight past 60 deg.
    knee_r = mot.column("knee_angle_r")
    assert knee_r[0] < 25 and np.nanmax(knee_r) > 60
    hip_r = mot.column("hip_flexion_r")
    assert hip_r[0] < 25 and np.nanmax(hip_r) > 60


def test_mot_frames_without_a_pose_are_nan(gappy):
    mot = read_mot(_export([PersonTrack(0, gappy)], "mot").decode())
    assert mot.data.shape == (FRAMES, len(MOT_COLUMNS))
    assert np.isnan(mot.data[list(MISSING), 1:]).all()
    assert np.isfinite(mot.column("knee_angle_r")[[0, 1, 2, 5]]).all()


# --- The joint angles on synthetic skeletons ------------------------------------------------------
# BlazePose's world frame, the person facing the camera: x to the picture's right (the person's
# left), y down, z away from the camera (forward is -z).
DOWN, UP = np.array([0.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0])
FORWARD, LEFT = np.array([0.0, 0.0, -1.0]), np.array([1.0, 0.0, 0.0])


def _standing() -> dict[Landmark, np.ndarray]:
    """Standing in the anatomical position: every column reads 0."""
    body = {}
    for side, sign in (("LEFT", 1.0), ("RIGHT", -1.0)):
        body[Landmark[f"{side}_HIP"]] = np.array([0.1 * sign, 0.0, 0.0])
        body[Landmark[f"{side}_KNEE"]] = np.array([0.1 * sign, 0.45, 0.0])
        body[Landmark[f"{side}_ANKLE"]] = np.array([0.1 * sign, 0.9, 0.0])
        body[Landmark[f"{side}_HEEL"]] = np.array([0.1 * sign, 0.95, 0.05])
        body[Landmark[f"{side}_FOOT_INDEX"]] = np.array([0.1 * sign, 0.95, -0.15])
        # Shoulders straight above the hips: each side's trunk line (shoulder to hip, which the
        # hip and shoulder angles are measured from) is vertical.
        body[Landmark[f"{side}_SHOULDER"]] = np.array([0.1 * sign, -0.5, 0.0])
        body[Landmark[f"{side}_ELBOW"]] = np.array([0.1 * sign, -0.2, 0.0])
        body[Landmark[f"{side}_WRIST"]] = np.array([0.1 * sign, 0.05, 0.0])
    return body


def _limb(body, joint: str, middle: str, end: str, side: str, first, second=DOWN) -> None:
    """Point the limb from `joint` along `first` (the segment after it along `second`)."""
    start = body[Landmark[f"{side}_{joint}"]]
    body[Landmark[f"{side}_{middle}"]] = start + 0.3 * first
    body[Landmark[f"{side}_{end}"]] = start + 0.3 * first + 0.25 * second


def _toward(axis: np.ndarray, degrees: float, start: np.ndarray = DOWN) -> np.ndarray:
    turn = np.radians(degrees)
    return np.cos(turn) * start + np.sin(turn) * axis


def _angles(body: dict[Landmark, np.ndarray], *, turn_deg: float = 0.0) -> dict[str, float]:
    """The columns for one frame of `body`, seen with the person turned by `turn_deg` about the
    vertical (the camera's view must not matter)."""
    turn = np.radians(turn_deg)
    rotation = np.array(
        [[np.cos(turn), 0, np.sin(turn)], [0, 1, 0], [-np.sin(turn), 0, np.cos(turn)]]
    )
    world = np.zeros((1, 33, 3))
    for landmark, point in body.items():
        world[0, landmark] = rotation @ point
    poses = PoseSeries(np.zeros(1), np.zeros((1, 33, 2)), world, np.ones((1, 33)))
    return {name: float(values[0]) for name, values in joint_angles_deg(poses).items()}


def test_standing_in_the_anatomical_position_reads_zero_everywhere():
    assert _angles(_standing()) == pytest.approx(dict.fromkeys(MOT_COLUMNS[1:], 0.0), abs=1e-9)


@pytest.mark.parametrize("turn_deg", [0.0, 90.0, -135.0])
@pytest.mark.parametrize(
    ("pose", "expected"),
    [
        # Arm forward to the horizontal: 90 deg of flexion, no frontal-plane angle.
        (lambda b, s, side: _limb(b, "SHOULDER", "ELBOW", "WRIST", s, FORWARD, FORWARD),
         {"arm_flex": 90.0, "arm_add": None, "elbow_flex": 0.0}),
        # Arm raised forward and up to 150 deg.
        (lambda b, s, side: _limb(b, "SHOULDER", "ELBOW", "WRIST", s, _toward(FORWARD, 150)),
         {"arm_flex": 150.0, "arm_add": None}),
        # Arm behind the trunk: 30 deg of extension.
        (lambda b, s, side: _limb(b, "SHOULDER", "ELBOW", "WRIST", s, _toward(-FORWARD, 30)),
         {"arm_flex": -30.0, "arm_add": 0.0}),
        # Arm out to the side and up to 150 deg of abduction: OpenSim's arm_add is -150.
        (lambda b, s, side: _limb(b, "SHOULDER", "ELBOW", "WRIST", s, _toward(side, 150)),
         {"arm_add": -150.0, "arm_flex": None}),
        # Elbow bent to 90 deg, the upper arm hanging.
        (lambda b, s, side: _limb(b, "SHOULDER", "ELBOW", "WRIST", s, DOWN, FORWARD),
         {"arm_flex": 0.0, "arm_add": 0.0, "elbow_flex": 90.0}),
        # Thigh flexed to 100 deg with the shank hanging (sitting high): knee 100 deg.
        (lambda b, s, side: _limb(b, "HIP", "KNEE", "ANKLE", s, _toward(FORWARD, 100)),
         {"hip_flexion": 100.0, "hip_adduction": None, "knee_angle": 100.0}),
        # Hip extended 20 deg, knee straight.
        (lambda b, s, side: _limb(b, "HIP", "KNEE", "ANKLE", s, _toward(-FORWARD, 20),
                                  _toward(-FORWARD, 20)),
         {"hip_flexion": -20.0, "hip_adduction": 0.0, "knee_angle": 0.0}),
        # Leg out to the side by 30 deg: OpenSim's hip_adduction is -30; no flexion.
        (lambda b, s, side: _limb(b, "HIP", "KNEE", "ANKLE", s, _toward(side, 30),
                                  _toward(side, 30)),
         {"hip_adduction": -30.0, "hip_flexion": 0.0, "knee_angle": 0.0}),
    ],
)  # fmt: skip
def test_the_angles_are_the_clinical_ones_signed_as_opensim_from_any_view(pose, expected, turn_deg):
    for side, outwards in (("RIGHT", -LEFT), ("LEFT", LEFT)):  # mirror images read the same
        body = _standing()
        pose(body, side, outwards)
        angles = _angles(body, turn_deg=turn_deg)
        for name, value in expected.items():
            column = f"{name}_{side[0].lower()}"
            if value is None:
                assert np.isnan(angles[column]), column
            else:
                assert angles[column] == pytest.approx(value, abs=1e-5), column


@pytest.mark.parametrize("dorsiflexion", [20.0, 0.0, -30.0])
def test_the_ankle_angle_is_dorsiflexion_from_a_foot_square_to_the_shank(dorsiflexion):
    body = _standing()
    ankle = body[Landmark.RIGHT_ANKLE]
    body[Landmark.RIGHT_HEEL] = ankle + np.array([0.0, 0.05, 0.05])
    foot = _toward(UP, dorsiflexion, start=FORWARD)  # toes towards the shin: dorsiflexion
    body[Landmark.RIGHT_FOOT_INDEX] = body[Landmark.RIGHT_HEEL] + 0.2 * foot
    assert _angles(body)["ankle_angle_r"] == pytest.approx(dorsiflexion, abs=1e-6)


def test_an_angle_with_a_landmark_out_of_sight_is_nan():
    world = np.zeros((1, 33, 3))
    for landmark, point in _standing().items():
        world[0, landmark] = point
    visibility = np.ones((1, 33))
    visibility[0, Landmark.RIGHT_ANKLE] = MIN_VISIBILITY - 0.01
    angles = joint_angles_deg(PoseSeries(np.zeros(1), np.zeros((1, 33, 2)), world, visibility))
    assert np.isnan(angles["knee_angle_r"][0]) and np.isnan(angles["ankle_angle_r"][0])
    assert angles["knee_angle_l"][0] == pytest.approx(0.0, abs=1e-9)
    assert angles["hip_flexion_r"][0] == pytest.approx(0.0, abs=1e-9)


# --- One content, two ways to get it --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "suffix", "content_type", "file_name"),
    [
        ("coco", None, "application/json", "pose_squats_coco.json"),
        ("openpose", None, "application/zip", "pose_squats_openpose.zip"),
        ("openpose", ".json", "application/json", "pose_squats_openpose.json"),
        ("trc", None, "text/plain; charset=utf-8", "pose_squats.trc"),
        ("mot", None, "text/plain; charset=utf-8", "pose_squats.mot"),
    ],
)
def test_a_download_is_the_same_content_as_the_file(
    poses, tmp_path, fmt, suffix, content_type, file_name
):
    tracks = [PersonTrack(0, poses)]
    content, kind, name = export_bytes(
        tracks, fmt, image_size=IMAGE_SIZE, fps=FPS, name="pose_squats", suffix=suffix
    )
    assert (kind, name) == (content_type, file_name)
    out = tmp_path / name
    write_export(tracks, fmt, out, image_size=IMAGE_SIZE, fps=FPS, name="pose_squats")
    assert out.read_bytes() == content


@pytest.mark.parametrize("fmt", ["trc", "mot"])
def test_several_people_in_opensim_formats_go_into_a_zip_one_file_each(two_people, fmt):
    content, kind, name = export_bytes(
        two_people, fmt, image_size=IMAGE_SIZE, fps=FPS, name="group video"
    )
    assert kind == "application/zip" and name == f"group_video_{fmt}.zip"
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.namelist() == [f"group_video_person4.{fmt}", f"group_video_person9.{fmt}"]
    with pytest.raises(ExportError, match="one person"):
        export_bytes(two_people, fmt, image_size=IMAGE_SIZE, fps=FPS, name="x", suffix=f".{fmt}")


def test_names_from_outside_cannot_leave_the_archive(poses):
    content, _, file_name = export_bytes(
        [PersonTrack(0, poses)], "openpose", image_size=IMAGE_SIZE, fps=FPS, name="../../etc/x"
    )
    assert file_name == "etc_x_openpose.zip"
    files = _openpose_zip(content)
    assert all("/" not in name and not name.startswith(".") for name in files)


# --- Bad input ------------------------------------------------------------------------------------


def test_an_unknown_format_or_a_wrong_suffix_is_a_clear_error(poses, tmp_path):
    tracks = [PersonTrack(0, poses)]
    with pytest.raises(ExportError, match="unknown export format 'bvh'; one of: coco, openpose"):
        export_bytes(tracks, "bvh", image_size=IMAGE_SIZE, fps=FPS, name="x")
    for fmt, wrong in (("coco", "x.zip"), ("trc", "x.csv"), ("mot", "x.trc"), ("openpose", "x")):
        with pytest.raises(ValueError, match=f"a {fmt} export is written to"):
            write_export(tracks, fmt, tmp_path / wrong, image_size=IMAGE_SIZE, fps=FPS, name="x")
        assert not (tmp_path / wrong).exists()


def test_nothing_to_export_or_tracks_of_different_videos_are_errors(poses, gappy):
    for fmt in FORMATS:
        with pytest.raises(ExportError, match="no tracked person"):
            export_bytes([], fmt, image_size=IMAGE_SIZE, fps=FPS, name="x")
    short = PoseSeries(poses.t_s[:5], poses.pixels[:5], poses.world[:5], poses.visibility[:5])
    with pytest.raises(ExportError, match="one row per frame"):
        export_bytes(
            [PersonTrack(1, poses), PersonTrack(2, short)],
            "coco",
            image_size=IMAGE_SIZE,
            fps=FPS,
            name="x",
        )
    with pytest.raises(ExportError, match="ids must differ"):
        export_bytes(
            [PersonTrack(1, poses), PersonTrack(1, gappy)],
            "coco",
            image_size=IMAGE_SIZE,
            fps=FPS,
            name="x",
        )


def test_every_format_takes_a_track_that_is_nan_throughout(poses):
    nobody = PersonTrack(0, PoseSeries.empty_frames(poses.t_s))
    assert json.loads(_export([nobody], "coco"))["annotations"] == []
    assert all(
        f == {"version": 1.3, "people": []}
        for f in json.loads(_export([nobody], "openpose", ".json"))
    )
    assert len(read_mot(_export([nobody], "mot").decode()).data) == FRAMES
    assert _export([nobody], "trc").count(b"\n") == 6 + FRAMES


# --- Kept landmarks -------------------------------------------------------------------------------


def test_landmarks_survive_the_npz_round_trip(two_people):
    data = tracks_to_npz(two_people, image_size=IMAGE_SIZE, fps=FPS)
    stored = tracks_from_npz(data)
    assert stored.image_size == IMAGE_SIZE and stored.fps == FPS
    assert [track.track_id for track in stored.tracks] == [4, 9]
    for before, after in zip(two_people, stored.tracks, strict=True):
        assert np.array_equal(after.poses.t_s, before.poses.t_s)
        for field in ("pixels", "world", "visibility"):
            kept, original = getattr(after.poses, field), getattr(before.poses, field)
            assert kept.dtype == np.float64 and kept.shape == original.shape
            assert np.allclose(kept, original, atol=1e-3, rtol=1e-6, equal_nan=True), field
    # An export made later from the kept landmarks is the export of the originals.
    later, _, _ = export_bytes(
        stored.tracks, "coco", image_size=stored.image_size, fps=stored.fps, name="x"
    )
    kept = json.loads(later)
    now = json.loads(_export(two_people, "coco"))
    assert [a["image_id"] for a in kept["annotations"]] == [
        a["image_id"] for a in now["annotations"]
    ]
    assert np.allclose(
        [a["keypoints"] for a in kept["annotations"]],
        [a["keypoints"] for a in now["annotations"]],
        atol=0.011,
    )


def test_kept_landmarks_are_small(poses):
    data = tracks_to_npz([PersonTrack(0, poses)], image_size=IMAGE_SIZE, fps=FPS)
    assert len(data) < FRAMES * 33 * 6 * 4  # under float32 raw size: compressed


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an archive at all",
        np.random.default_rng(0).bytes(5000),
        b"PK\x03\x04" + b"\x00" * 100,  # a broken zip
        _npz(pixels=np.zeros(3)),  # an npz of something else
        _npz(t_s=np.array([object()], dtype=object)),  # a pickled object
    ],
)
def test_bad_bytes_are_a_clear_value_error(data):
    with pytest.raises(ValueError, match="not stored landmarks"):
        tracks_from_npz(data)


def test_a_single_array_or_wrong_shapes_are_value_errors(poses):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(4))
    with pytest.raises(ValueError, match="not stored landmarks"):
        tracks_from_npz(buffer.getvalue())
    good = tracks_to_npz([PersonTrack(0, poses)], image_size=IMAGE_SIZE, fps=FPS)
    with np.load(io.BytesIO(good)) as npz:
        arrays = {key: npz[key] for key in npz.files}
    for key, bad in (("world", np.zeros((1, FRAMES, 33, 2))), ("fps", np.array(-1.0))):
        with pytest.raises(ValueError, match="stored landmarks"):
            tracks_from_npz(_npz(**(arrays | {key: bad})))
