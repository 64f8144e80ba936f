"""2D clinical angles from the project's landmarks against human-annotated keypoints, by quality.

    .venv/bin/python bench/angle_accuracy.py [--coco PATH]... [--mpii PATH]... [--rows]

`--coco`: a COCO keypoint file (17 keypoints [x, y, v]*17 per annotation, a `bbox` [x, y, w, h],
image paths relative to the file). `--mpii`: a list of people in mmpose's MPII format (`image`,
`joints` 16 x [x, y] with [-1, -1] for unlabelled, `joints_vis`, `center`, `scale`: the person is
about 200 * scale px tall). With neither: ../shared/data/keypoints_gt/{coco/test_coco.json,
mpii/test_mpii.json}.

Every annotated person is landmarked on their own box (the landmark model on a square region of
interest around the box, an engine without smoothing: no frame leans on another). Elbow, knee and
hip flexion and shoulder flexion/abduction (the same three points in 2D), left and right, are
computed the same way from the annotation and from the landmarks, for every angle whose three
points are annotated; each is graded by analysis.quality on its one frame. `--rows` prints every
angle. It prints MAE, median and P90 per angle, overall, per grade and per measured condition
alone (the evidence for the grade's limits), the share of the angles in full view (all three
points annotated visible) graded good, and last:
  good-grade angle MAE X deg (n), P90 Y; all MAE Z (n)
It exits 0 whatever the score, 2 for a missing or malformed file.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from analysis.exercises import BY_SLUG, ExerciseDefinition  # noqa: E402
from analysis.kinematics import SIDES, PoseSeries, three_point_angle_deg  # noqa: E402
from analysis.landmarks import sided_landmark  # noqa: E402
from analysis.pose.engine import PoseEngine, Tracking  # noqa: E402
from analysis.pose.roi import BOX_MARGIN, RegionOfInterest  # noqa: E402
from analysis.pose.types import Pose  # noqa: E402
from analysis.quality import Grade, grade_repetition, quality_measures  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "keypoints_gt"
DEFAULT_COCO = DATA / "coco" / "test_coco.json"
DEFAULT_MPII = DATA / "mpii" / "test_mpii.json"

# Each scored angle, graded as the library exercise that measures it.
ANGLES = {
    "elbow flexion": "elbow_flexion",
    "knee flexion": "squat",
    "hip flexion": "straight_leg_raise",
    "shoulder flexion/abduction": "shoulder_flexion",
}
COCO_POINTS = {
    ("shoulder", "left"): 5,
    ("shoulder", "right"): 6,
    ("elbow", "left"): 7,
    ("elbow", "right"): 8,
    ("wrist", "left"): 9,
    ("wrist", "right"): 10,
    ("hip", "left"): 11,
    ("hip", "right"): 12,
    ("knee", "left"): 13,
    ("knee", "right"): 14,
    ("ankle", "left"): 15,
    ("ankle", "right"): 16,
}
MPII_POINTS = {
    ("ankle", "right"): 0,
    ("knee", "right"): 1,
    ("hip", "right"): 2,
    ("hip", "left"): 3,
    ("knee", "left"): 4,
    ("ankle", "left"): 5,
    ("wrist", "right"): 10,
    ("elbow", "right"): 11,
    ("shoulder", "right"): 12,
    ("shoulder", "left"): 13,
    ("elbow", "left"): 14,
    ("wrist", "left"): 15,
}
MPII_PERSON_PX_PER_SCALE = 200.0  # MPII's `scale` is the person's height in units of 200 px


class AnnotationError(Exception):
    """A keypoint file that is missing or not in the format its option names."""


@dataclass(frozen=True)
class Point:
    xy: tuple[float, float]
    visible: bool


@dataclass(frozen=True)
class Person:
    source: str  # file name and person, for --rows
    image: Path
    box: tuple[float, float, float, float]  # x, y, width, height in pixels
    points: dict[tuple[str, str], Point]  # labelled points only, by (body point, side)


@dataclass(frozen=True)
class Scored:
    person: str
    angle: str
    side: str
    annotated_deg: float
    landmarks_deg: float
    grade: Grade
    reasons: tuple[str, ...]
    in_full_view: bool
    seen: bool  # the quality measures of the angle's frame
    obliquity_deg: float
    segment_px: float

    @property
    def error_deg(self) -> float:
        return abs(self.landmarks_deg - self.annotated_deg)


# --- annotations ---------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise AnnotationError(f"no such file: {path}")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(f"{path}: not JSON ({error})") from error


def coco_people(path: Path) -> list[Person]:
    data = _read_json(path)
    try:
        images = {image["id"]: path.parent / image["file_name"] for image in data["images"]}
        people = [
            _coco_person(path, annotation, images[annotation["image_id"]])
            for annotation in data["annotations"]
            if not annotation.get("iscrowd") and annotation.get("num_keypoints", 1) > 0
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise AnnotationError(f"{path}: not a COCO keypoint file ({error!r})") from error
    return people


def _coco_person(path: Path, annotation: dict[str, Any], image: Path) -> Person:
    keypoints = np.asarray(annotation["keypoints"], dtype=np.float64)
    if keypoints.shape != (51,):
        raise ValueError(f"annotation {annotation.get('id')}: {keypoints.size} numbers, not 17*3")
    x, y, w, h = (float(value) for value in annotation["bbox"])
    triples = keypoints.reshape(17, 3)
    points = {
        key: Point((triples[i, 0], triples[i, 1]), bool(triples[i, 2] == 2))
        for key, i in COCO_POINTS.items()
        if triples[i, 2] > 0
    }
    return Person(f"{path.name}#{annotation.get('id')}", image, (x, y, w, h), points)


def mpii_people(path: Path) -> list[Person]:
    data = _read_json(path)
    try:
        return [_mpii_person(path, number, entry) for number, entry in enumerate(data)]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise AnnotationError(f"{path}: not an MPII keypoint file ({error!r})") from error


def _mpii_person(path: Path, number: int, entry: dict[str, Any]) -> Person:
    joints = np.asarray(entry["joints"], dtype=np.float64)
    seen = np.asarray(entry["joints_vis"], dtype=np.float64)
    if joints.shape != (16, 2) or seen.shape != (16,):
        raise ValueError(f"person {number}: joints {joints.shape}, not 16 x [x, y]")
    side = MPII_PERSON_PX_PER_SCALE * float(entry["scale"])
    cx, cy = (float(value) for value in entry["center"])
    points = {
        key: Point((joints[i, 0], joints[i, 1]), bool(seen[i] > 0))
        for key, i in MPII_POINTS.items()
        if not (joints[i] == -1).all()  # MPII marks an unlabelled joint [-1, -1]
    }
    box = (cx - side / 2, cy - side / 2, side, side)
    return Person(f"{path.name}#{number}", path.parent / entry["image"], box, points)


# --- landmarks -----------------------------------------------------------------------------------


def box_roi(box: tuple[float, float, float, float], width: int, height: int) -> RegionOfInterest:
    """The landmark model's square, upright region around a person's box, with the margin the
    model was trained with (as the engine builds it around a detected body)."""
    x, y, w, h = box
    side = BOX_MARGIN * max(w, h)
    return RegionOfInterest(
        x_center=(x + w / 2) / width,
        y_center=(y + h / 2) / height,
        width=side / width,
        height=side / height,
        rotation=0.0,
    )


def landmark(engine: PoseEngine, image_bgr: np.ndarray, person: Person) -> Pose | None:
    """The person's landmarks on their box; None when the model finds no pose there (the
    engine's fallback, the detector on the whole picture, may find somebody else)."""
    height, width = image_bgr.shape[:2]
    roi = box_roi(person.box, width, height)
    result, _ = engine.estimate(image_bgr, 0.0, Tracking(next_box=roi, chosen=True))
    return result if result is not None and result.tracked else None


def one_frame(result: Pose) -> PoseSeries:
    return PoseSeries(
        t_s=np.zeros(1),
        pixels=result.pixels[None],
        world=result.world[None],
        visibility=result.visibility[None],
    )


# --- scoring -------------------------------------------------------------------------------------


def score_person(person: Person, result: Pose) -> Iterator[Scored]:
    poses = one_frame(result)
    for angle_name, slug in ANGLES.items():
        exercise = BY_SLUG[slug]
        measures = quality_measures(poses, exercise)
        for side in SIDES:
            scored = _score_angle(person, poses, exercise, side, measures)
            if scored is not None:
                yield Scored(person.source, angle_name, side, *scored)


def _score_angle(
    person: Person,
    poses: PoseSeries,
    exercise: ExerciseDefinition,
    side: str,
    measures: dict[str, np.ndarray],
) -> tuple[Any, ...] | None:
    """Scored's fields after the angle's name and side; None unless all three points are
    annotated."""
    names = (exercise.angle.proximal, exercise.angle.vertex, exercise.angle.distal)
    annotated = [person.points[name, side] for name in names if (name, side) in person.points]
    if len(annotated) < 3:
        return None
    found = [poses.pixels[0, sided_landmark(name, side)] for name in names]
    quality = grade_repetition(measures, exercise.angle, side)
    return (
        _clinical_deg(exercise, [point.xy for point in annotated]),
        _clinical_deg(exercise, found),
        quality.grade,
        quality.reasons,
        all(point.visible for point in annotated),
        bool(measures[f"quality_seen_{side}"][0] == 1.0),
        float(measures[f"quality_obliquity_deg_{side}"][0]),
        float(measures[f"quality_segment_px_{side}"][0]),
    )


def _clinical_deg(exercise: ExerciseDefinition, points: list[Any]) -> float:
    proximal, vertex, distal = (np.asarray(point, dtype=np.float64) for point in points)
    return exercise.angle.clinical_deg(float(three_point_angle_deg(proximal, vertex, distal)))


def run(people: list[Person]) -> tuple[list[Scored], int]:
    """Every scorable angle of every person, and how many people got no landmarks."""
    images: dict[Path, np.ndarray] = {}
    scored: list[Scored] = []
    missed = 0
    with PoseEngine(smooth=False) as engine:
        for person in people:
            if person.image not in images:
                images[person.image] = _read_image(person.image)
            result = landmark(engine, images[person.image], person)
            if result is None:
                missed += 1
                continue
            scored.extend(score_person(person, result))
    return scored, missed


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path)) if path.is_file() else None
    if image is None:
        raise AnnotationError(f"cannot read the image {path}")
    return image


# --- report --------------------------------------------------------------------------------------


def summary(errors: list[float]) -> str:
    if not errors:
        return "n=0"
    values = np.asarray(errors)
    return (
        f"MAE {values.mean():5.1f}  median {np.median(values):5.1f}  "
        f"P90 {np.percentile(values, 90):5.1f}  (n={values.size})"
    )


def report(scored: list[Scored], people: int, missed: int) -> list[str]:
    lines = [f"people {people}, no landmarks on their box {missed}, angles scored {len(scored)}"]
    for angle in ANGLES:
        lines.append(f"  {angle:28s} {summary([s.error_deg for s in scored if s.angle == angle])}")
    lines.append(f"  {'all':28s} {summary([s.error_deg for s in scored])}")
    for grade in Grade:
        errors = [s.error_deg for s in scored if s.grade is grade]
        lines.append(f"  grade {grade.value:22s} {summary(errors)}")
    lines.extend(by_condition(scored))
    in_view = [s for s in scored if s.in_full_view]
    good = sum(s.grade is Grade.GOOD for s in in_view)
    share = good / len(in_view) if in_view else 0.0
    lines.append(f"angles in full view graded good: {good}/{len(in_view)} ({100 * share:.0f}%)")
    lines.append(summary_line(scored))
    return lines


def by_condition(scored: list[Scored]) -> list[str]:
    """Errors by each measured condition alone (obliquity and size on seen angles only), the
    evidence for the grade's limits."""
    seen = [s for s in scored if s.seen]
    bands = {
        "landmarks seen": seen,
        "landmarks hidden": [s for s in scored if not s.seen],
        "seen, limb plane <= 30 deg": [s for s in seen if s.obliquity_deg <= 30],
        "seen, limb plane 30-60 deg": [s for s in seen if 30 < s.obliquity_deg <= 60],
        "seen, limb plane > 60 deg": [s for s in seen if s.obliquity_deg > 60],
        "seen, segment < 40 px": [s for s in seen if s.segment_px < 40],
        "seen, segment 40-60 px": [s for s in seen if 40 <= s.segment_px < 60],
        "seen, segment 60-80 px": [s for s in seen if 60 <= s.segment_px < 80],
        "seen, segment >= 80 px": [s for s in seen if s.segment_px >= 80],
    }
    lines = ["by condition:"]
    for label, chosen in bands.items():
        lines.append(f"  {label:28s} {summary([s.error_deg for s in chosen])}")
    return lines


def summary_line(scored: list[Scored]) -> str:
    good = np.asarray([s.error_deg for s in scored if s.grade is Grade.GOOD])
    every = np.asarray([s.error_deg for s in scored])
    good_mae = f"{good.mean():.1f}" if good.size else "nan"
    good_p90 = f"{np.percentile(good, 90):.1f}" if good.size else "nan"
    all_mae = f"{every.mean():.1f}" if every.size else "nan"
    return (
        f"good-grade angle MAE {good_mae} deg ({good.size}), P90 {good_p90}; "
        f"all MAE {all_mae} ({every.size})"
    )


def row(scored: Scored) -> str:
    view = "in view" if scored.in_full_view else "occluded"
    reasons = "; ".join(scored.reasons)
    return (
        f"{scored.person:22s} {scored.angle:26s} {scored.side:5s} annotated "
        f"{scored.annotated_deg:6.1f} landmarks {scored.landmarks_deg:6.1f} "
        f"error {scored.error_deg:5.1f} {scored.grade.value:4s} {view:8s} {reasons}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coco", type=Path, action="append", default=[], metavar="PATH")
    parser.add_argument("--mpii", type=Path, action="append", default=[], metavar="PATH")
    parser.add_argument("--rows", action="store_true", help="print every scored angle")
    args = parser.parse_args(argv)
    coco, mpii = args.coco, args.mpii
    if not coco and not mpii:
        coco, mpii = [DEFAULT_COCO], [DEFAULT_MPII]
    try:
        people = [p for path in coco for p in coco_people(path)]
        people += [p for path in mpii for p in mpii_people(path)]
        scored, missed = run(people)
    except AnnotationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.rows:
        print("\n".join(row(s) for s in scored))
    print("\n".join(report(scored, len(people), missed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
