"""Landmarks in the file formats other motion-analysis tools read (docs/exports.md, "Landmark
exports"), and a compact store of them so that an analysed video's landmarks can be kept (never
the video) and exported later.

    write_export(tracks, "coco", Path("squats.json"), image_size=(720, 1280), fps=30.0,
                 name="squats")
    content, content_type, file_name = export_bytes(tracks, "trc", image_size=..., fps=...,
                                                    name="squats")   # a web download

Formats, one PersonTrack or several (every track has one row per frame of the video):

- ``coco``: COCO keypoints JSON (the 17 COCO keypoints, in pixels);
- ``openpose``: OpenPose BODY_25 JSON, one file per frame in a .zip or one array in a .json;
- ``trc``: OpenSim markers (the 33 BlazePose world landmarks, metres, y up);
- ``mot``: OpenSim storage of clinical joint angles (degrees).

All of them come from the same arrays: `export_bytes` builds the content, `write_export` writes
it. Frames where a person was not found (NaN rows) are left out or left empty, as each format
expects.
"""

import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.exercises import (
    ELBOW_FLEXION,
    HIP_ABDUCTION,
    HIP_FLEXION,
    KNEE_FLEXION,
    SHOULDER_ABDUCTION,
    SHOULDER_FLEXION,
    JointAngle,
)
from analysis.kinematics import MIN_VISIBILITY, PoseSeries, three_point_angle_deg
from analysis.landmarks import Landmark, sided_landmark
from analysis.people import PersonTrack

FORMATS = ("coco", "openpose", "trc", "mot")
# The suffixes each format may be written to; the first is the default of a single track.
SUFFIXES: dict[str, tuple[str, ...]] = {
    "coco": (".json",),
    "openpose": (".zip", ".json"),
    "trc": (".trc", ".zip"),
    "mot": (".mot", ".zip"),
}
# Formats written one file per person: several people go into a .zip, one file each.
ONE_PERSON_PER_FILE = ("trc", "mot")
CONTENT_TYPES = {
    ".json": "application/json",
    ".zip": "application/zip",
    ".trc": "text/plain; charset=utf-8",
    ".mot": "text/plain; charset=utf-8",
}

# --- COCO keypoints ------------------------------------------------------------------------------
# The COCO person category: its 17 keypoints (each also a BlazePose landmark of the same name) and
# its skeleton (1-based keypoint numbers), as in person_keypoints_*.json.
COCO_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_FROM_BLAZEPOSE = tuple(int(Landmark[name.upper()]) for name in COCO_KEYPOINTS)
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
COCO_PERSON_CATEGORY = 1
# COCO's visibility flag: 2 labelled and visible, 1 labelled but not visible, 0 not labelled.
# BlazePose's visibility at or above this is "visible" (the threshold the joint angles use);
# below it the point is BlazePose's estimate of a hidden point. A point outside the picture, or
# of a frame where the person was not found, is not labelled (0, with x = y = 0).
COCO_VISIBLE_FROM = MIN_VISIBILITY

# --- OpenPose BODY_25 ----------------------------------------------------------------------------
OPENPOSE_VERSION = 1.3
# BODY_25's points in order: a BlazePose landmark, the midpoint of two, or none (BlazePose has no
# small toe: written 0,0,0, as OpenPose writes a point it did not detect).
BODY_25: tuple[tuple[str, tuple[Landmark, ...]], ...] = (
    ("Nose", (Landmark.NOSE,)),
    ("Neck", (Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER)),
    ("RShoulder", (Landmark.RIGHT_SHOULDER,)),
    ("RElbow", (Landmark.RIGHT_ELBOW,)),
    ("RWrist", (Landmark.RIGHT_WRIST,)),
    ("LShoulder", (Landmark.LEFT_SHOULDER,)),
    ("LElbow", (Landmark.LEFT_ELBOW,)),
    ("LWrist", (Landmark.LEFT_WRIST,)),
    ("MidHip", (Landmark.LEFT_HIP, Landmark.RIGHT_HIP)),
    ("RHip", (Landmark.RIGHT_HIP,)),
    ("RKnee", (Landmark.RIGHT_KNEE,)),
    ("RAnkle", (Landmark.RIGHT_ANKLE,)),
    ("LHip", (Landmark.LEFT_HIP,)),
    ("LKnee", (Landmark.LEFT_KNEE,)),
    ("LAnkle", (Landmark.LEFT_ANKLE,)),
    ("REye", (Landmark.RIGHT_EYE,)),
    ("LEye", (Landmark.LEFT_EYE,)),
    ("REar", (Landmark.RIGHT_EAR,)),
    ("LEar", (Landmark.LEFT_EAR,)),
    ("LBigToe", (Landmark.LEFT_FOOT_INDEX,)),
    ("LSmallToe", ()),
    ("LHeel", (Landmark.LEFT_HEEL,)),
    ("RBigToe", (Landmark.RIGHT_FOOT_INDEX,)),
    ("RSmallToe", ()),
    ("RHeel", (Landmark.RIGHT_HEEL,)),
)
OPENPOSE_EMPTY_ARRAYS = (
    "face_keypoints_2d",
    "hand_left_keypoints_2d",
    "hand_right_keypoints_2d",
    "pose_keypoints_3d",
    "face_keypoints_3d",
    "hand_left_keypoints_3d",
    "hand_right_keypoints_3d",
)

# --- OpenSim -------------------------------------------------------------------------------------
TRC_MARKERS = tuple(landmark.name.lower() for landmark in Landmark)
# BlazePose world (x right in the picture, y down, z away from the camera) to OpenSim's y-up
# right-handed frame: a half turn about x (X = x, Y = -y, Z = -z, towards the camera).
BLAZEPOSE_TO_OPENSIM = np.array([1.0, -1.0, -1.0])

# A trunk line that keeps less than this fraction of its length in a body plane (more than about
# 75 deg out of it: landmarks gone astray) gives no angle in that plane.
MIN_IN_PLANE_FRACTION = 0.25


@dataclass(frozen=True)
class MotColumn:
    """One joint-angle column of the .mot: OpenSim's coordinate name (Rajagopal 2015 full-body
    model) and how it is measured from the world landmarks of one side."""

    name: str
    compute: Callable[[PoseSeries, "_BodyAxes"], np.ndarray]


class ExportError(ValueError):
    """An export that cannot be made as asked (unknown format, wrong suffix, no person)."""


# --- The public API ------------------------------------------------------------------------------


def export_bytes(
    tracks: Sequence[PersonTrack],
    fmt: str,
    *,
    image_size: tuple[int, int],
    fps: float,
    name: str,
    suffix: str | None = None,
) -> tuple[bytes, str, str]:
    """(content, content type, file name) of an export: `fmt` one of FORMATS, `suffix` the kind
    of file (one of SUFFIXES[fmt]; None: the format's usual one, a .zip for several people in a
    one-person-per-file format). `image_size` is (width, height) in pixels; `name` (the video's
    stem) names the files."""
    if suffix is None:
        suffix = default_suffix(fmt, len(tracks))
    suffix = check_suffix(fmt, suffix, len(tracks))
    _check_tracks(tracks)
    stem = safe_name(name)
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ExportError(f"image size must be positive, not {width}x{height}")
    if not (math.isfinite(fps) and fps > 0):
        raise ExportError(f"frame rate must be positive, not {fps}")
    if fmt == "coco":
        content = _json_bytes(coco_keypoints(tracks, image_size=image_size, name=stem))
    elif fmt == "openpose":
        frames = openpose_frames(tracks, image_size=image_size)
        if suffix == ".json":
            content = _json_bytes(frames)
        else:
            content = _zip_bytes(
                (f"{stem}_{index:012d}_keypoints.json", _json_bytes(frame))
                for index, frame in enumerate(frames)
            )
    else:
        text = trc_text if fmt == "trc" else mot_text
        if suffix == ".zip":
            content = _zip_bytes(
                (
                    f"{stem}_person{track.track_id}.{fmt}",
                    text(track.poses, fps=fps, name=f"{stem}_person{track.track_id}").encode(),
                )
                for track in tracks
            )
        else:
            content = text(tracks[0].poses, fps=fps, name=stem).encode()
    file_name = f"{stem}{suffix}" if suffix == f".{fmt}" else f"{stem}_{fmt}{suffix}"
    return content, CONTENT_TYPES[suffix], file_name


def write_export(
    tracks: Sequence[PersonTrack],
    fmt: str,
    out: Path,
    *,
    image_size: tuple[int, int],
    fps: float,
    name: str,
) -> None:
    """Write an export to `out`, whose suffix says the kind of file (SUFFIXES[fmt])."""
    content, _, _ = export_bytes(
        tracks, fmt, image_size=image_size, fps=fps, name=name, suffix=out.suffix.lower()
    )
    out.write_bytes(content)


def default_suffix(fmt: str, people: int) -> str:
    check_format(fmt)
    if fmt in ONE_PERSON_PER_FILE and people > 1:
        return ".zip"
    return SUFFIXES[fmt][0]


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; one of: {', '.join(FORMATS)}")
    return fmt


def check_suffix(fmt: str, suffix: str, people: int = 1) -> str:
    """The suffix, lower-cased, if a `fmt` export of `people` people can be written to such a
    file; otherwise an ExportError that says what can."""
    check_format(fmt)
    suffix = suffix.lower()
    allowed = SUFFIXES[fmt]
    if suffix not in allowed:
        given = repr(suffix) if suffix else "a name without one"
        raise ExportError(
            f"a {fmt} export is written to a {' or '.join(allowed)} file, not {given}"
        )
    if fmt in ONE_PERSON_PER_FILE and people > 1 and suffix != ".zip":
        raise ExportError(
            f"a {suffix} file holds one person: {people} people go into a .zip, one {suffix} each"
        )
    return suffix


def safe_name(name: str) -> str:
    """`name` fit for a file name (inside a .zip too): letters, digits, '.', '-' and '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "landmarks"


# --- COCO ----------------------------------------------------------------------------------------


def coco_keypoints(
    tracks: Sequence[PersonTrack], *, image_size: tuple[int, int], name: str = "video"
) -> dict[str, object]:
    """A COCO keypoints dataset: one image per frame (id = frame index), one annotation per
    person per frame where that person was found with at least one keypoint in the picture."""
    width, height = image_size
    frames = len(tracks[0].poses) if tracks else 0
    images = [
        {"id": i, "width": width, "height": height, "file_name": f"frame_{i:06d}.jpg"}
        for i in range(frames)
    ]
    annotations: list[dict[str, object]] = []
    for track in tracks:
        poses = track.poses
        for frame in range(frames):
            # Annotation ids from 1: COCOeval takes a matched id of 0 for "no match".
            ids = {"id": len(annotations) + 1, "image_id": frame, "track_id": track.track_id}
            annotation = _coco_annotation(poses, frame, image_size)
            if annotation is not None:
                annotations.append(ids | annotation)
    return {
        "info": {"description": f"BlazePose landmarks of {name}", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": COCO_PERSON_CATEGORY,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(COCO_KEYPOINTS),
                "skeleton": [list(pair) for pair in COCO_SKELETON],
            }
        ],
    }


def coco_visibility_flags(
    pixels: np.ndarray, visibility: np.ndarray, image_size: tuple[int, int]
) -> np.ndarray:
    """COCO's v (0, 1 or 2) for landmarks (..., 2) in pixels with their BlazePose visibility."""
    labelled = _in_picture(pixels, image_size)
    return np.where(labelled, np.where(visibility >= COCO_VISIBLE_FROM, 2, 1), 0)


def _coco_annotation(
    poses: PoseSeries, frame: int, image_size: tuple[int, int]
) -> dict[str, object] | None:
    points = poses.pixels[frame]
    if not np.isfinite(points).any():
        return None
    keypoints = points[list(COCO_FROM_BLAZEPOSE)]
    seen = poses.visibility[frame, list(COCO_FROM_BLAZEPOSE)]
    flags = coco_visibility_flags(keypoints, seen, image_size)
    labelled = int(np.count_nonzero(flags))
    if labelled == 0:
        return None  # COCO ignores a person without keypoints; a frame without one is clearer
    width, height = image_size
    found = points[np.isfinite(points).all(axis=1)]
    x0, y0 = np.clip(found.min(axis=0), 0, [width, height])
    x1, y1 = np.clip(found.max(axis=0), 0, [width, height])
    flat: list[float] = []
    for (x, y), v in zip(keypoints, flags, strict=True):
        flat += [round(float(x), 2), round(float(y), 2), int(v)] if v else [0, 0, 0]
    box_w, box_h = float(x1 - x0), float(y1 - y0)
    return {
        "category_id": COCO_PERSON_CATEGORY,
        "keypoints": flat,
        "num_keypoints": labelled,
        "bbox": [round(float(x0), 2), round(float(y0), 2), round(box_w, 2), round(box_h, 2)],
        "area": round(box_w * box_h, 2),
        "iscrowd": 0,
        "score": round(float(np.mean(seen)), 4),
    }


# --- OpenPose ------------------------------------------------------------------------------------


def openpose_frames(
    tracks: Sequence[PersonTrack], *, image_size: tuple[int, int]
) -> list[dict[str, object]]:
    """One OpenPose JSON object per frame: the people found in it, BODY_25 in pixels."""
    frames = len(tracks[0].poses) if tracks else 0
    body = [_body_25(track.poses, image_size) for track in tracks]
    result: list[dict[str, object]] = []
    for frame in range(frames):
        people: list[dict[str, object]] = []
        for track, keypoints in zip(tracks, body, strict=True):
            if not np.isfinite(track.poses.pixels[frame]).any():
                continue
            person: dict[str, object] = {
                "person_id": [track.track_id],
                "pose_keypoints_2d": keypoints[frame],
            }
            person |= {key: [] for key in OPENPOSE_EMPTY_ARRAYS}
            people.append(person)
        result.append({"version": OPENPOSE_VERSION, "people": people})
    return result


def _body_25(poses: PoseSeries, image_size: tuple[int, int]) -> list[list[float]]:
    """Per frame, the flat [x, y, c] * 25 list: c is BlazePose's visibility (the smaller of the two
    for a midpoint); a point not found or outside the picture is 0, 0, 0."""
    frames = len(poses)
    xy = np.zeros((frames, len(BODY_25), 2))
    confidence = np.zeros((frames, len(BODY_25)))
    for part, (_, landmarks) in enumerate(BODY_25):
        if not landmarks:
            continue
        points = poses.pixels[:, list(landmarks)]  # (T, 1 or 2, 2)
        seen = poses.visibility[:, list(landmarks)]
        found = _in_picture(points, image_size).all(axis=1)
        xy[:, part] = np.where(found[:, None], np.nan_to_num(points.mean(axis=1)), 0.0)
        confidence[:, part] = np.where(found, seen.min(axis=1), 0.0)
    result = []
    for frame in range(frames):
        flat: list[float] = []
        for (x, y), c in zip(xy[frame], confidence[frame], strict=True):
            flat += [round(float(x), 3), round(float(y), 3), round(float(c), 4)] if c else [0, 0, 0]
        result.append(flat)
    return result


# --- OpenSim .trc --------------------------------------------------------------------------------


def opensim_markers(world: np.ndarray) -> np.ndarray:
    """BlazePose world landmarks (..., 3) in OpenSim's frame: X = x, Y = -y (up), Z = -z."""
    return np.asarray(world, dtype=np.float64) * BLAZEPOSE_TO_OPENSIM


def trc_text(poses: PoseSeries, *, fps: float, name: str) -> str:
    """The 33 world landmarks as OpenSim markers (metres), tab-separated. Each row ends with a
    tab, as OpenSim writes them, so that a frame without a pose keeps its empty fields."""
    markers = opensim_markers(poses.world)
    frames, count = len(poses), len(TRC_MARKERS)
    rate = f"{fps:.6g}"
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{name}.trc",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame"
        "\tOrigNumFrames",
        f"{rate}\t{rate}\t{frames}\t{count}\tm\t{rate}\t1\t{frames}",
        "Frame#\tTime\t" + "".join(f"{marker}\t\t\t" for marker in TRC_MARKERS),
        "\t\t" + "".join(f"X{i}\tY{i}\tZ{i}\t" for i in range(1, count + 1)),
        "",
    ]
    for frame in range(frames):
        row = [str(frame + 1), f"{poses.t_s[frame]:.6f}"]
        for x, y, z in markers[frame]:
            if np.isfinite([x, y, z]).all():
                row += [f"{x:.6f}", f"{y:.6f}", f"{z:.6f}"]
            else:
                row += ["", "", ""]
        lines.append("\t".join(row) + "\t")
    return "\n".join(lines) + "\n"


# --- OpenSim .mot --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BodyAxes:
    """Per frame, the body's unit axes from the world landmarks (T, 3) each: `up` from the mid-hip
    to the mid-shoulder, `left` from the right to the left side (square to up), `forward` = left x
    up (the world frame is right-handed). Taken from every landmark, seen or not: the far side's
    estimate still gives a steady trunk, where the angles themselves need their landmarks seen."""

    up: np.ndarray
    left: np.ndarray
    forward: np.ndarray

    @classmethod
    def of(cls, world: np.ndarray) -> "_BodyAxes":
        hips = world[:, Landmark.LEFT_HIP] + world[:, Landmark.RIGHT_HIP]
        shoulders = world[:, Landmark.LEFT_SHOULDER] + world[:, Landmark.RIGHT_SHOULDER]
        up = _unit((shoulders - hips) / 2)
        across = (world[:, Landmark.LEFT_HIP] - world[:, Landmark.RIGHT_HIP]) + (
            world[:, Landmark.LEFT_SHOULDER] - world[:, Landmark.RIGHT_SHOULDER]
        )
        left = _unit(across - _dot(across, up)[:, None] * up)
        return cls(up=up, left=left, forward=np.cross(left, up))


def mot_columns() -> tuple[MotColumn, ...]:
    """The .mot's joint-angle columns, OpenSim's order: right leg, left leg, right arm, left arm."""

    def leg(side: str) -> tuple[MotColumn, ...]:
        s = side[0]
        return (
            MotColumn(f"hip_flexion_{s}", lambda p, a: _sagittal_deg(p, HIP_FLEXION, side, a)),
            MotColumn(f"hip_adduction_{s}", lambda p, a: -_frontal_deg(p, HIP_ABDUCTION, side, a)),
            MotColumn(f"knee_angle_{s}", lambda p, a: _joint_3d_deg(p, KNEE_FLEXION, side)),
            MotColumn(f"ankle_angle_{s}", lambda p, a: _ankle_dorsiflexion_deg(p, side)),
        )

    def arm(side: str) -> tuple[MotColumn, ...]:
        s = side[0]
        return (
            MotColumn(f"arm_flex_{s}", lambda p, a: _sagittal_deg(p, SHOULDER_FLEXION, side, a)),
            MotColumn(f"arm_add_{s}", lambda p, a: -_frontal_deg(p, SHOULDER_ABDUCTION, side, a)),
            MotColumn(f"elbow_flex_{s}", lambda p, a: _joint_3d_deg(p, ELBOW_FLEXION, side)),
        )

    return leg("right") + leg("left") + arm("right") + arm("left")


def joint_angles_deg(poses: PoseSeries) -> dict[str, np.ndarray]:
    """Column name -> (T,) degrees, NaN where a landmark of the angle is not seen (BlazePose
    visibility below MIN_VISIBILITY), the person not found or the angle undefined."""
    axes = _BodyAxes.of(np.asarray(poses.world, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return {column.name: column.compute(poses, axes) for column in mot_columns()}


def mot_text(poses: PoseSeries, *, fps: float, name: str) -> str:
    """OpenSim storage (version 1) of the joint angles in degrees, tab-separated; NaN where not
    measured. `fps` is not written: the time column carries it."""
    del fps  # the signature is shared with trc_text
    angles = joint_angles_deg(poses)
    columns = ["time", *angles]
    lines = [
        name,
        "version=1",
        f"nRows={len(poses)}",
        f"nColumns={len(columns)}",
        "inDegrees=yes",
        "endheader",
        "\t".join(columns),
    ]
    for frame in range(len(poses)):
        values = [f"{poses.t_s[frame]:.6f}"]
        values += [_mot_number(series[frame]) for series in angles.values()]
        lines.append("\t".join(values))
    return "\n".join(lines) + "\n"


def _mot_number(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "NaN"


def _joint_3d_deg(poses: PoseSeries, angle: JointAngle, side: str) -> np.ndarray:
    """The clinical angle of analysis.exercises from the three world landmarks (a hinge: knee,
    elbow)."""
    proximal, vertex, distal = angle.landmarks(side)
    world = poses.world
    raw = three_point_angle_deg(world[:, proximal], world[:, vertex], world[:, distal])
    return np.where(_seen(poses, proximal, vertex, distal), angle.clinical_deg(raw), np.nan)


def _sagittal_deg(poses: PoseSeries, angle: JointAngle, side: str, axes: _BodyAxes) -> np.ndarray:
    """Flexion (+) and extension (-) of a hip or shoulder: the angle of `angle`'s three points
    (trunk line, joint, limb) in the body's sagittal plane, signed towards the front."""
    return _planar_deg(poses, angle, side, normal=axes.left, towards=axes.forward)


def _frontal_deg(poses: PoseSeries, angle: JointAngle, side: str, axes: _BodyAxes) -> np.ndarray:
    """Abduction (+) and adduction (-): the same three points in the body's frontal plane, signed
    away from the midline."""
    outwards = axes.left if side == "left" else -axes.left
    return _planar_deg(poses, angle, side, normal=axes.forward, towards=outwards)


def _planar_deg(
    poses: PoseSeries, angle: JointAngle, side: str, *, normal: np.ndarray, towards: np.ndarray
) -> np.ndarray:
    """`angle` (analysis.exercises) within the plane square to `normal`, as a goniometer held in
    that plane reads it: the limb's angle (vertex to distal) from where it lies at the clinical
    zero, positive towards `towards`, in (-90, 270]. Its size is `angle.clinical_deg` of the three
    points projected onto the plane.

    At the clinical zero the limb lies along the trunk line: past the joint for a three-point
    angle of 180 deg there (hip: shoulder, hip, knee in a line), back along it for 0 deg
    (shoulder: the arm hanging by the trunk). NaN where the plane does not hold the movement: the
    limb leans further out of the plane than it reaches across it or down along the trunk line
    (a thigh flexed in a squat has no frontal-plane angle, an arm raised sideways overhead no
    sagittal one; a leg standing a little apart still has its sagittal one).
    """
    proximal, vertex, distal = angle.landmarks(side)
    world = poses.world
    if angle.raw_at_zero_deg == 180:
        zero = world[:, vertex] - world[:, proximal]
    elif angle.raw_at_zero_deg == 0:
        zero = world[:, proximal] - world[:, vertex]
    else:
        raise ValueError(f"{angle.label}: no planar form for a zero at {angle.raw_at_zero_deg} deg")
    limb = world[:, distal] - world[:, vertex]
    zero_in_plane, limb_in_plane = _in_plane(zero, normal), _in_plane(limb, normal)
    along = _unit(zero_in_plane)
    across = _unit(towards - _dot(towards, along)[:, None] * along)
    degrees = np.degrees(np.arctan2(_dot(limb_in_plane, across), _dot(limb_in_plane, along)))
    degrees = np.where(degrees <= -90, degrees + 360, degrees)
    # The limb leans out of the plane no further than it reaches across it, or down along it.
    direction = _unit(limb)
    reach = np.maximum(np.abs(_dot(direction, across)), _dot(direction, along))
    defined = _keeps_in_plane(zero, zero_in_plane) & (np.abs(_dot(direction, normal)) <= reach)
    return np.where(_seen(poses, proximal, vertex, distal) & defined, degrees, np.nan)


def _ankle_dorsiflexion_deg(poses: PoseSeries, side: str) -> np.ndarray:
    """Dorsiflexion (+) and plantarflexion (-): 90 deg less the angle between the shank (ankle to
    knee) and the foot (heel to foot index); 0 with the foot square to the shank."""
    knee, ankle = sided_landmark("knee", side), sided_landmark("ankle", side)
    heel, toe = sided_landmark("heel", side), sided_landmark("foot_index", side)
    world = poses.world
    shank = world[:, knee] - world[:, ankle]
    foot = world[:, toe] - world[:, heel]
    between = three_point_angle_deg(shank, np.zeros_like(shank), foot)
    return np.where(_seen(poses, knee, ankle, heel, toe), 90.0 - between, np.nan)


def _seen(poses: PoseSeries, *landmarks: Landmark) -> np.ndarray:
    return (poses.visibility[:, list(landmarks)] >= MIN_VISIBILITY).all(axis=1)


def _in_plane(vectors: np.ndarray, normal: np.ndarray) -> np.ndarray:
    return vectors - _dot(vectors, normal)[:, None] * normal


def _keeps_in_plane(vectors: np.ndarray, projected: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(vectors, axis=-1)
    return np.linalg.norm(projected, axis=-1) >= MIN_IN_PLANE_FRACTION * length


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1)


def _unit(vectors: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


# --- Kept landmarks (npz) -------------------------------------------------------------------------

NPZ_FORMAT = "rehab-landmarks/1"


@dataclass(frozen=True)
class StoredLandmarks:
    """What `tracks_from_npz` gives back: the tracks and what an export needs besides them."""

    tracks: list[PersonTrack]
    image_size: tuple[int, int]
    fps: float


def tracks_to_npz(
    tracks: Sequence[PersonTrack], *, image_size: tuple[int, int], fps: float
) -> bytes:
    """Every track's landmarks, compressed, with the image size and frame rate an export needs.
    Landmarks as float32: well under a hundredth of a pixel or a millimetre. Nothing pickled."""
    _check_tracks(tracks)
    t_s = tracks[0].poses.t_s
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        format=np.array(NPZ_FORMAT),
        track_ids=np.array([track.track_id for track in tracks], dtype=np.int64),
        t_s=np.asarray(t_s, dtype=np.float64),
        pixels=_stacked(tracks, "pixels"),
        world=_stacked(tracks, "world"),
        visibility=_stacked(tracks, "visibility"),
        image_size=np.array(image_size, dtype=np.int64),
        fps=np.array(float(fps)),
    )
    return buffer.getvalue()


def tracks_from_npz(data: bytes) -> StoredLandmarks:
    """The tracks `tracks_to_npz` stored; a ValueError for anything else."""
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive of them")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"not stored landmarks: {error}") from error
    expected = {"format", "track_ids", "t_s", "pixels", "world", "visibility", "image_size", "fps"}
    if set(arrays) != expected or str(arrays["format"]) != NPZ_FORMAT:
        raise ValueError(f"not stored landmarks (expected {NPZ_FORMAT})")
    ids, t_s = arrays["track_ids"], arrays["t_s"]
    people, frames = len(ids), len(t_s)
    shapes = {
        "track_ids": (people,),
        "t_s": (frames,),
        "pixels": (people, frames, 33, 2),
        "world": (people, frames, 33, 3),
        "visibility": (people, frames, 33),
        "image_size": (2,),
        "fps": (),
    }
    for key, shape in shapes.items():
        if arrays[key].shape != shape or arrays[key].dtype.kind not in "iuf":
            raise ValueError(f"stored landmarks: {key} has shape {arrays[key].shape}, not {shape}")
    width, height = (int(v) for v in arrays["image_size"])
    fps = float(arrays["fps"])
    if width <= 0 or height <= 0 or not (math.isfinite(fps) and fps > 0):
        raise ValueError("stored landmarks: image size and frame rate must be positive")
    tracks = [
        PersonTrack(
            track_id=int(ids[i]),
            poses=PoseSeries(
                t_s=t_s.astype(np.float64),
                pixels=arrays["pixels"][i].astype(np.float64),
                world=arrays["world"][i].astype(np.float64),
                visibility=arrays["visibility"][i].astype(np.float64),
            ),
        )
        for i in range(people)
    ]
    return StoredLandmarks(tracks=tracks, image_size=(width, height), fps=fps)


def _stacked(tracks: Sequence[PersonTrack], field: str) -> np.ndarray:
    return np.stack([getattr(track.poses, field) for track in tracks]).astype(np.float32)


# --- Shared --------------------------------------------------------------------------------------


def _check_tracks(tracks: Sequence[PersonTrack]) -> None:
    if not tracks:
        raise ExportError("nothing to export: no tracked person")
    frames = len(tracks[0].poses)
    for track in tracks:
        poses = track.poses
        if len(poses) != frames or not np.array_equal(poses.t_s, tracks[0].poses.t_s):
            raise ExportError("every track needs one row per frame of the same video")
        if (
            poses.pixels.shape != (frames, 33, 2)
            or poses.world.shape != (frames, 33, 3)
            or poses.visibility.shape != (frames, 33)
        ):
            raise ExportError(f"track {track.track_id}: landmark arrays of the wrong shape")
    ids = [track.track_id for track in tracks]
    if len(set(ids)) != len(ids):
        raise ExportError("track ids must differ")


def _in_picture(points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(...) True where a point (..., 2) was found and lies within the picture."""
    width, height = image_size
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(points).all(axis=-1)
            & (points[..., 0] >= 0)
            & (points[..., 0] <= width)
            & (points[..., 1] >= 0)
            & (points[..., 1] <= height)
        )


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _zip_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files:
            archive.writestr(name, content)
    return buffer.getvalue()
