"""Form faults: the one place where each fault an exercise lists is either measured or left to the
therapist.

A fault whose code has a rule in RULES is measured: the rule names the per-frame measure it reads
(`form_measures`), the landmarks behind it, the camera view it needs, how a repetition's frames are
judged, its default threshold and why. An exercise's FormFault may set its own threshold. A fault
with no rule (OBSERVED_BY_THERAPIST gives the reason for the library's own, and a therapist's
custom fault has none) is observed by the therapist and never flagged automatically.

Thresholds mean "look at this", not normal movement: each lies beyond what a correct repetition
shows, with room for BlazePose's landmark jitter of a few pixels. A value at the threshold is not a
fault.

Measures come from one frame only: `analysis.tracker` computes them frame by frame in a live
session, `analysis.video` on a whole clip (then low-pass filtered). What needs time (the change
since the repetition's start, its range) is judged over the repetition's frames. Pixels have y
down; "the other limb" of a pair of measures is named `other_...`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from analysis.exercises import (
    LIBRARY,
    CameraView,
    ExerciseDefinition,
    FormFault,
    Laterality,
    Plane,
)
from analysis.kinematics import (
    SIDES,
    PoseSeries,
    plane_obliquity_deg,
    three_point_angle_deg,
    visible,
)
from analysis.landmarks import Landmark, sided_landmark

# A rule that needs a view judges only the frames whose body is turned less than this from it
# (0 deg: facing the camera, 90 deg: side-on); beyond, the camera sees the motion foreshortened.
VIEW_TOLERANCE_DEG = 35.0
# Knee flexion at or beyond which a patient sits or is just rising (sit to stand): hands on the
# thighs then push; standing with the arms by the sides also puts the wrists beside the thighs.
SEATED_KNEE_DEG = 60.0
_ROUNDING = 1e-6  # a value at the threshold is not a fault, whatever the float rounding


class Judgement(StrEnum):
    """How a rule reads its measure over one repetition's frames (seen in the view it needs)."""

    MOST = "most"  # the largest value exceeds the threshold
    LEAST = "least"  # even the smallest value exceeds it (never got there)
    CLOSEST = "closest"  # the smallest value falls below it
    RISE = "rise"  # rises more than the threshold above its value at the repetition's start
    FALL = "fall"  # falls more than the threshold below its value at the start
    FALL_SHARE = "fall_share"  # falls by more than this share of its value at the start
    RANGE = "range"  # largest minus smallest exceeds it
    SHORTFALL = "shortfall"  # the repetition's peak angle stays short of the target by more


_JUDGED = {
    Judgement.MOST: "largest value above",
    Judgement.LEAST: "smallest value above",
    Judgement.CLOSEST: "smallest value below",
    Judgement.RISE: "rises from the start by more than",
    Judgement.FALL: "falls from the start by more than",
    Judgement.FALL_SHARE: "falls from the start by more than",
    Judgement.RANGE: "range above",
    Judgement.SHORTFALL: "peak short of the target by more than",
}


@dataclass(frozen=True)
class FormRule:
    """How one fault is measured: a fault is flagged when the repetition's value of the
    judgement, over the frames seen in `view`, lies beyond the threshold (in `unit`)."""

    code: str
    label: str
    measure: str  # a key of form_measures ("" for SHORTFALL: the repetition's peak angle)
    landmarks: str  # what is measured, from which landmarks
    view: CameraView | None  # the view it needs; None: any
    judgement: Judgement
    threshold: float
    unit: str
    why: str
    source: str = ""
    # A measure of one limb: the measured one and `other_` + measure are judged, unless the
    # exercise moves one side only. In a view turned beyond 45 deg only the nearer limb is seen.
    limb: bool = False
    # Used instead of `threshold` in an exercise that keeps the trunk upright: any but a hip or
    # knee exercise of the sagittal plane (squat, sit to stand, lunge), whose balance over the
    # feet brings the trunk forward.
    upright_threshold: float | None = None

    def default_threshold(self, exercise: ExerciseDefinition) -> float:
        leaning = exercise.plane is Plane.SAGITTAL and exercise.angle.joint in ("hip", "knee")
        if self.upright_threshold is not None and not leaning:
            return self.upright_threshold
        return self.threshold

    def beyond(self, value: float, threshold: float) -> bool:
        if self.judgement is Judgement.CLOSEST:
            return value < threshold - _ROUNDING
        return value > threshold + _ROUNDING

    def summary(self, threshold: float) -> str:
        """What a page shows: "measured (threshold 15 deg, needs a front view)"."""
        view = f", needs a {self.view} view" if self.view else ""
        return f"measured (threshold {threshold:g} {self.unit}{view})"


_SHORTFALL_WHY = (
    "The counter follows the patient's own range; a peak this far short of the prescribed target "
    "is worth a look (angle error of a good view is about 5 deg)."
)


def _shortfall(code: str, label: str, threshold: float = 15.0, why: str = "") -> FormRule:
    return FormRule(
        code,
        label,
        measure="",
        landmarks="the exercise's own joint angle at the repetition's peak",
        view=None,
        judgement=Judgement.SHORTFALL,
        threshold=threshold,
        unit="deg",
        why=why or _SHORTFALL_WHY,
    )


_RULES: tuple[FormRule, ...] = (
    FormRule(
        "trunk_lean",
        "Trunk leans too far",
        measure="trunk_from_vertical_deg",
        landmarks="hips to shoulders in the image, from vertical (side view: forwards or back, "
        "front view: sideways)",
        view=None,
        judgement=Judgement.MOST,
        threshold=55.0,
        upright_threshold=15.0,
        unit="deg",
        why="A squat to 90 deg knee flexion normally brings the trunk 30-45 deg forward, sitting "
        "down and standing up up to about 50; standing on one leg or raising an arm, the trunk "
        "stays within about 10 deg of vertical (leaning sideways or back is the compensation).",
    ),
    FormRule(
        "shoulder_hiking",
        "Shoulder hikes up towards the ear",
        measure="shoulder_to_ear_px",
        landmarks="vertical distance from the shoulder up to the ear, in pixels",
        view=None,
        judgement=Judgement.FALL_SHARE,
        threshold=0.5,
        unit="of its start",
        limb=True,
        why="The shoulder rises with any raise (the girdle elevates, and BlazePose's shoulder "
        "follows the humeral head): clean lateral raises to shoulder height take up to about a "
        "third of the shoulder-to-ear distance. Half of it gone is a shrug.",
    ),
    FormRule(
        "elbow_bend",
        "Elbow bends during the raise",
        measure="elbow_flexion_deg",
        landmarks="shoulder, elbow, wrist: elbow flexion in the image",
        view=CameraView.SIDE,
        judgement=Judgement.MOST,
        threshold=30.0,
        unit="deg",
        limb=True,
        why="A straight-arm raise keeps the elbow within about 10-15 deg of straight; a bent elbow "
        "shortens the lever. A forward raise is seen face-on from the side only.",
    ),
    FormRule(
        "knee_valgus",
        "Knee collapses inwards",
        measure="knee_valgus_hip",
        landmarks="hip, knee, ankle of both legs: how far the knees lie inside their hip-ankle "
        "lines, averaged over the legs, in hip widths (the offset behind the frontal-plane "
        "projection angle)",
        view=CameraView.FRONT,
        judgement=Judgement.MOST,
        threshold=0.25,
        unit="hip widths",
        why="A frontal-plane projection angle beyond about 10-15 deg is read as dynamic valgus in "
        "screening; a quarter hip width (about 5 cm) inside the line is 15 deg for a straight "
        "leg. Averaged over the legs because a body turned from the camera shifts bent knees "
        "sideways, one in and one out, which makes one leg's angle of a deep squat meaningless.",
        source="Frontal-plane projection angle: Munro, Herrington & Carolan (2012), J Sport "
        "Rehabil 21:7-11",
    ),
    FormRule(
        "knee_past_toes",
        "Front knee travels far past the toes",
        measure="knee_past_toes_foot",
        landmarks="knee ahead of the toe tip (foot index) in the direction the foot points "
        "(heel to toes), in foot lengths",
        view=CameraView.SIDE,
        judgement=Judgement.MOST,
        threshold=0.25,
        unit="foot lengths",
        limb=True,
        why="A knee over the toes is normal and restricting it loads the hips and back instead; "
        "a quarter foot beyond them takes the shank about 35 deg forward, more than a lunge to "
        "90 deg needs.",
        source="Fry, Smith & Schilling (2003), J Strength Cond Res 17:629-633 (knee position "
        "and hip and knee torques in the squat)",
    ),
    FormRule(
        "heels_rise",
        "Heels lift off the floor",
        measure="heel_height_foot",
        landmarks="heel above the toe tip of the same foot, in foot lengths (the sine of the "
        "foot's tilt)",
        view=CameraView.SIDE,
        judgement=Judgement.RISE,
        threshold=0.2,
        unit="foot lengths",
        limb=True,
        why="About 5 cm, the foot tilted 12 deg: a visible rise onto the forefoot. With the heel "
        "down, the heel landmark still drifts up by about 0.1 foot lengths as the ankle bends "
        "in a deep squat.",
    ),
    FormRule(
        "heel_lift",
        "Heel lifts off the surface",
        measure="heel_above_hip_foot",
        landmarks="heel height above the hip (lying on the back), in foot lengths",
        view=CameraView.SIDE,
        judgement=Judgement.RISE,
        threshold=0.3,
        unit="foot lengths",
        limb=True,
        why="About 7 cm: the heel clearly off the surface, beyond what a camera tilted by a few "
        "degrees makes of a heel sliding along it.",
    ),
    FormRule(
        "hip_hike",
        "Pelvis hitches up instead of the leg moving",
        measure="pelvis_tilt_deg",
        landmarks="the line between the hips: the moving side's hip above the other, in degrees",
        view=CameraView.FRONT,
        judgement=Judgement.RISE,
        threshold=10.0,
        unit="deg",
        why="Hip abduction moves the thigh, not the pelvis; a hip line tilting 10 deg (about 4 cm "
        "across an adult pelvis) is the pelvis hitched by the trunk.",
    ),
    FormRule(
        "hip_sag",
        "Hips sag towards the floor",
        measure="body_line_sag_deg",
        landmarks="shoulder, hip, knee: bend of the body line at the hip, hip below the line",
        view=CameraView.SIDE,
        judgement=Judgement.MOST,
        threshold=20.0,
        unit="deg",
        why="A push-up holds shoulders, hips and knees in a line (the knee, not the ankle, so that "
        "a push-up on the knees is judged the same); a sag of 15-20 deg is plainly visible and "
        "loads the lower back.",
    ),
    FormRule(
        "hip_pike",
        "Hips pike up",
        measure="body_pike_deg",
        landmarks="shoulder, hip, knee: bend of the body line at the hip, hip above the line",
        view=CameraView.SIDE,
        judgement=Judgement.MOST,
        threshold=25.0,
        unit="deg",
        why="Hips a little high at the top of a push-up are common and harmless, and BlazePose "
        "places a prone hip towards the buttock (a straight body reads about 5 deg piked): 25 "
        "deg is a pike by eye.",
    ),
    FormRule(
        "trunk_swing",
        "Swings the trunk to lift the weight",
        measure="trunk_tilt_deg",
        landmarks="hips to shoulders in the image, signed tilt from vertical",
        view=CameraView.SIDE,
        judgement=Judgement.RANGE,
        threshold=15.0,
        unit="deg",
        why="Standing still, the trunk sways a few degrees; a swing of 15 deg within one "
        "repetition is momentum doing the work.",
    ),
    FormRule(
        "leans_back",
        "Leans back to lift the leg",
        measure="trunk_forward_deg",
        landmarks="hips to shoulders, tilt towards the face (nose ahead of the ears, else toes "
        "ahead of the heels)",
        view=CameraView.SIDE,
        judgement=Judgement.FALL,
        threshold=10.0,
        unit="deg",
        why="Sitting still, the trunk keeps its angle within a few degrees; leaning back 10 deg "
        "during the lift shortens the hamstrings' pull and lifts the leg with the trunk.",
    ),
    _shortfall(
        "extension_lag",
        "Knee does not straighten fully",
        threshold=10.0,
        why="Active extension short of the prescribed one (full, by default) by more than 5-10 "
        "deg is an extension lag; 10 deg stays beyond the angle's error.",
    ),
    FormRule(
        "knee_bend",
        "Knee of the lifted leg bends",
        measure="knee_flexion_deg",
        landmarks="hip, knee, ankle of the measured leg: knee flexion",
        view=CameraView.SIDE,
        judgement=Judgement.RISE,
        threshold=15.0,
        unit="deg",
        limb=True,
        why="A straight-leg raise keeps the knee locked; bending 15 deg during the lift is a "
        "quadriceps lag (the change is judged, so the other, bent leg is not flagged).",
    ),
    FormRule(
        "trunk_lift",
        "Upper body lifts off the surface",
        measure="trunk_from_vertical_deg",
        landmarks="hips to shoulders: the trunk rising from lying (its angle from vertical falls)",
        view=CameraView.SIDE,
        judgement=Judgement.FALL,
        threshold=15.0,
        unit="deg",
        why="Lying flat the trunk line keeps its angle; shoulders lifting about 12 cm off the "
        "surface raise it 15 deg, beyond a pillow's or the hip landmark's shift.",
    ),
    FormRule(
        "incomplete_lockout",
        "Arms do not straighten overhead",
        measure="overhead_elbow_flexion_deg",
        landmarks="shoulder, elbow, wrist: elbow flexion at its straightest while the arm is "
        "overhead (upper arm over 30 deg above horizontal, wrist above the elbow)",
        view=CameraView.FRONT,
        judgement=Judgement.LEAST,
        threshold=20.0,
        unit="deg",
        limb=True,
        why="At lockout the elbow is within about 10 deg of straight; still 20 deg bent at its "
        "straightest, the press stopped short.",
    ),
    FormRule(
        "elbow_drift",
        "Upper arm swings forward",
        measure="upper_arm_from_trunk_deg",
        landmarks="hip, shoulder, elbow: the upper arm's angle from the trunk line",
        view=CameraView.SIDE,
        judgement=Judgement.MOST,
        threshold=35.0,
        unit="deg",
        limb=True,
        why="A curl keeps the upper arm by the side; some forward drift at the top is normal, "
        "35 deg is the shoulder lifting the weight.",
    ),
    FormRule(
        "uses_hands",
        "Pushes up with the hands",
        measure="wrist_to_thigh",
        landmarks="wrist to the hip-knee segment, in thigh lengths, while the knee is bent "
        f"{SEATED_KNEE_DEG:g} deg or more (sitting or rising)",
        view=CameraView.SIDE,
        judgement=Judgement.CLOSEST,
        threshold=0.25,
        unit="thigh lengths",
        limb=True,
        why="Hands on the thighs, knees or the seat beside them: the wrist lies within about a "
        "thigh's thickness of the thigh line. Arms crossed on the chest keep it far away.",
    ),
    _shortfall("shallow_depth", "Squat stops well short of the target depth"),
    _shortfall("partial_depth", "Elbows bend far less than the target"),
    _shortfall("incomplete_arm_raise", "Arms do not reach overhead"),
)

RULES: dict[str, FormRule] = {rule.code: rule for rule in _RULES}

# The library's faults no rule measures, and why: never flagged automatically.
OBSERVED_BY_THERAPIST: dict[str, str] = {
    "drops_into_chair": "Needs the speed of sitting down at the moment of contact, which no "
    "landmark marks; each repetition's eccentric time is reported instead.",
    "hip_rotation": "Rolling the hip outwards lying down moves the knee towards or away from a "
    "side camera, in BlazePose's depth, its noisiest coordinate.",
    "back_arch": "The lumbar curve is not among BlazePose's landmarks, and a front view does not "
    "see the trunk bend backwards.",
    "stiff_landing": "Knee flexion at landing is a sagittal angle the front view sees end-on, "
    "and a jumping jack is filmed from the front.",
}


def rule_for(code: str) -> FormRule | None:
    return RULES.get(code)


def is_measured(code: str) -> bool:
    """False: observed by the therapist (never flagged automatically). An exercise may still
    leave a measured fault to the therapist (FormFault.observed_by_therapist)."""
    return code in RULES


def threshold_for(fault: FormFault, exercise: ExerciseDefinition) -> float | None:
    """The threshold the fault is judged against in this exercise; None when not measured."""
    rule = RULES.get(fault.code)
    if rule is None or fault.observed_by_therapist:
        return None
    return fault.threshold if fault.threshold is not None else rule.default_threshold(exercise)


def describe(fault: FormFault, exercise: ExerciseDefinition) -> str:
    """How the fault is checked, in words for a page."""
    rule, threshold = RULES.get(fault.code), threshold_for(fault, exercise)
    if rule is None or threshold is None:
        return "observed by the therapist"
    return rule.summary(threshold)


# --- judging a repetition ------------------------------------------------------------------------
def form_flags(
    exercise: ExerciseDefinition,
    measures: Mapping[str, np.ndarray],
    *,
    peak_deg: float,
    target_deg: float,
) -> list[str]:
    """Fault codes of the exercise seen during one repetition.

    `measures` holds the repetition's frames only (other keys than form_measures' are ignored);
    `peak_deg` is its furthest angle towards the peak threshold (max for upward exercises, min for
    downward ones).
    """
    flags = []
    for fault in exercise.form_faults:
        rule, threshold = RULES.get(fault.code), threshold_for(fault, exercise)
        if rule is None or threshold is None:
            continue  # observed by the therapist
        value = fault_value(fault, exercise, measures, peak_deg=peak_deg, target_deg=target_deg)
        if value is not None and rule.beyond(value, threshold):
            flags.append(fault.code)
    return flags


def fault_value(
    fault: FormFault,
    exercise: ExerciseDefinition,
    measures: Mapping[str, np.ndarray],
    *,
    peak_deg: float,
    target_deg: float,
) -> float | None:
    """The repetition's value of the fault's rule, in the rule's unit (of the worse limb): NaN
    where nothing was measured in the view the rule needs, None where no rule applies."""
    rule = RULES.get(fault.code)
    if rule is None or fault.observed_by_therapist:
        return None
    if rule.judgement is Judgement.SHORTFALL:
        return exercise.thresholds.shortfall_deg(target_deg, peak_deg)
    per_limb = [_in_view(rule, measures, measures.get(name)) for name in _names(rule)]
    if exercise.laterality is Laterality.ONE_SIDE:
        # The measured limb; the other only where the measured one was never seen (a prescription
        # for either side, measured on the side turned away from the camera).
        per_limb = [next((v for v in per_limb if np.isfinite(v).any()), per_limb[0])]
    values = [value for limb in per_limb if np.isfinite(value := _judged(rule.judgement, limb))]
    if not values:
        return float("nan")
    return min(values) if rule.judgement is Judgement.CLOSEST else max(values)


def _names(rule: FormRule) -> list[str]:
    return [rule.measure, f"other_{rule.measure}"] if rule.limb else [rule.measure]


def _in_view(
    rule: FormRule, measures: Mapping[str, np.ndarray], values: np.ndarray | None
) -> np.ndarray:
    """The values of the frames seen in the view the rule needs (the others NaN); all NaN where a
    frame out of view could make the judgement wrong rather than only miss a fault."""
    if values is None:
        return np.array([], dtype=np.float64)  # a measure not taken (e.g. a bare angle signal)
    values = np.asarray(values, dtype=np.float64)
    if rule.view is None:
        return values
    turn = np.asarray(measures.get("body_turn_deg", np.full(len(values), np.nan)))
    with np.errstate(invalid="ignore"):
        if rule.view is CameraView.FRONT:
            seen = turn <= VIEW_TOLERANCE_DEG
        else:
            seen = turn >= 90 - VIEW_TOLERANCE_DEG
    measured = np.isfinite(values)
    unseen = measured & ~seen
    # The smallest value stands for the best the repetition got: every frame must be seen, and
    # the best must lie inside the repetition (one counted from the far end of a press has its
    # lockouts at its edges, maybe just outside). A change is counted from the first frame
    # measured: that one must be seen.
    if rule.judgement is Judgement.LEAST and (unseen.any() or not _least_inside(values)):
        return np.full(len(values), np.nan)
    if rule.judgement in _FROM_START and measured.any() and unseen[np.argmax(measured)]:
        return np.full(len(values), np.nan)
    return np.where(seen, values, np.nan)


_FROM_START = frozenset({Judgement.RISE, Judgement.FALL, Judgement.FALL_SHARE})


def _least_inside(values: np.ndarray) -> bool:
    """The smallest measured value is reached at a measured frame other than the first and last."""
    measured = values[np.isfinite(values)]
    return len(measured) >= 3 and bool(measured[1:-1].min() <= measured.min() + _ROUNDING)


def _judged(judgement: Judgement, values: np.ndarray) -> float:
    """The repetition's value of the judgement (NaN when nothing was measured)."""
    seen = values[np.isfinite(values)]
    if len(seen) == 0:
        return float("nan")
    start, low, high = float(seen[0]), float(seen.min()), float(seen.max())
    statistic: dict[Judgement, Callable[[], float]] = {
        Judgement.MOST: lambda: high,
        Judgement.LEAST: lambda: low,
        Judgement.CLOSEST: lambda: low,
        Judgement.RISE: lambda: high - start,
        Judgement.FALL: lambda: start - low,
        Judgement.FALL_SHARE: lambda: (start - low) / start if start > 0 else float("nan"),
        Judgement.RANGE: lambda: high - low,
    }
    return statistic[judgement]()


# --- per-frame measures --------------------------------------------------------------------------
def form_measures(poses: PoseSeries, side: str) -> dict[str, np.ndarray]:
    """Per-frame measures (each (T,), NaN where not measurable) that the rules read. `side` is the
    measured side; a limb's measure is taken of the other side too, as `other_...`."""
    tilt = _trunk_tilt_deg(poses)
    sag = _body_line_sag_deg(poses)
    measures = {
        "body_turn_deg": plane_obliquity_deg(poses.world, Plane.FRONTAL),
        "trunk_from_vertical_deg": np.abs(tilt),
        "trunk_tilt_deg": tilt,
        "trunk_forward_deg": tilt * _facing(poses),
        "body_line_sag_deg": sag,
        "body_pike_deg": -sag,
        "pelvis_tilt_deg": _pelvis_tilt_deg(poses, side),
        "knee_valgus_hip": _knee_valgus_hip(poses),
    }
    other = "left" if side == "right" else "right"
    for prefix, limb in (("", side), ("other_", other)):
        hidden = _hidden(poses, limb)
        for name, measure in _LIMB_MEASURES.items():
            measures[prefix + name] = np.where(hidden, np.nan, measure(poses, limb))
    return measures


def _pixels(poses: PoseSeries, point: str, side: str) -> np.ndarray:
    return poses.pixels[:, sided_landmark(point, side)]


def _seen(poses: PoseSeries, side: str, *points: str) -> np.ndarray:
    return visible(poses, *(sided_landmark(point, side) for point in points))


def _length(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors, axis=-1)


def _ratio(numerator: np.ndarray, denominator: np.ndarray, usable: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(usable & (denominator > 0), numerator / denominator, np.nan)


def _mean_seen(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean of two per-frame arrays where both are finite, else the finite one (else NaN)."""
    return np.where(np.isnan(a), b, np.where(np.isnan(b), a, (a + b) / 2))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


def _hidden(poses: PoseSeries, side: str) -> np.ndarray:
    """(T,) True where the limbs of this side are the far ones of a body turned more than 45 deg
    from the camera: BlazePose still places them, but behind the body they are guesses."""
    world = poses.world
    across = (world[:, Landmark.LEFT_SHOULDER] - world[:, Landmark.RIGHT_SHOULDER]) + (
        world[:, Landmark.LEFT_HIP] - world[:, Landmark.RIGHT_HIP]
    )
    with np.errstate(invalid="ignore"):
        left_deeper = across[:, 2] > 0  # world z grows away from the camera
        turned = plane_obliquity_deg(world, Plane.FRONTAL) > 45.0
    return turned & (left_deeper if side == "left" else ~left_deeper)


def _trunk_tilt_deg(poses: PoseSeries) -> np.ndarray:
    """Hips to shoulders from vertical, signed (+: shoulders towards image-right); both sides'
    lines averaged where both are seen (the midline, facing the camera)."""
    lines = []
    for side in SIDES:
        trunk = _pixels(poses, "shoulder", side) - _pixels(poses, "hip", side)
        lines.append(np.where(_seen(poses, side, "hip", "shoulder")[:, None], trunk, np.nan))
    trunk = _mean_seen(*lines)
    # Image y points down, so "up" is -y.
    return np.degrees(np.arctan2(trunk[:, 0], -trunk[:, 1]))


def _facing(poses: PoseSeries) -> np.ndarray:
    """(T,) +1 where the person faces image-right, -1 image-left, NaN unknown: the nose ahead of
    the ears, else the toes ahead of the heels."""
    ears = [
        np.where(visible(poses, ear), poses.pixels[:, ear, 0], np.nan)
        for ear in (Landmark.LEFT_EAR, Landmark.RIGHT_EAR)
    ]
    nose = np.where(visible(poses, Landmark.NOSE), poses.pixels[:, Landmark.NOSE, 0], np.nan)
    head = nose - _mean_seen(*ears)
    feet = [
        np.where(_seen(poses, side, "heel", "foot_index"), _foot(poses, side)[:, 0], np.nan)
        for side in SIDES
    ]
    ahead = np.where(np.isnan(head), _mean_seen(*feet), head)
    return np.where(ahead != 0, np.sign(ahead), np.nan)


def _foot(poses: PoseSeries, side: str) -> np.ndarray:
    """(T, 2) heel to toe tip."""
    return _pixels(poses, "foot_index", side) - _pixels(poses, "heel", side)


def _flexion_deg(poses: PoseSeries, side: str, points: tuple[str, str, str]) -> np.ndarray:
    """180 minus the three-point angle: 0 with the segments in line."""
    raw = three_point_angle_deg(*(_pixels(poses, point, side) for point in points))
    return np.where(_seen(poses, side, *points), 180.0 - raw, np.nan)


def _pelvis_tilt_deg(poses: PoseSeries, side: str) -> np.ndarray:
    """The measured side's hip above the other one, in degrees of the hip line's tilt."""
    other = "left" if side == "right" else "right"
    hip, other_hip = _pixels(poses, "hip", side), _pixels(poses, "hip", other)
    rise = other_hip[:, 1] - hip[:, 1]
    tilt = np.degrees(np.arctan2(rise, np.abs(hip[:, 0] - other_hip[:, 0])))
    return np.where(_seen(poses, side, "hip") & _seen(poses, other, "hip"), tilt, np.nan)


def _body_line_sag_deg(poses: PoseSeries) -> np.ndarray:
    """Bend of the shoulder-hip-knee line at the hip, + with the hip below the line (a sag),
    - above it (a pike); both sides averaged where both are seen."""
    per_side = []
    for side in SIDES:
        shoulder, hip, knee = (_pixels(poses, p, side) for p in ("shoulder", "hip", "knee"))
        bend = _flexion_deg(poses, side, ("shoulder", "hip", "knee"))
        line = knee - shoulder
        line = np.where(line[:, :1] < 0, -line, line)  # pointing image-right: y down is below
        below = np.sign(_cross(line, hip - shoulder))
        per_side.append(bend * below)
    return _mean_seen(*per_side)


def _knee_valgus_hip(poses: PoseSeries) -> np.ndarray:
    """How far the knees lie inside their hip-ankle lines (at knee height), both legs averaged,
    in hip widths; negative outside.

    Both legs together: a body turned from the camera shifts a bent knee sideways in the image,
    one inwards and the other outwards by the same amount, which cancels in the mean.
    """
    width = _pixels(poses, "hip", "left")[:, 0] - _pixels(poses, "hip", "right")[:, 0]
    inside = []
    for side, inwards in (("left", -1.0), ("right", 1.0)):  # towards the other hip, facing us
        hip, knee, ankle = (_pixels(poses, p, side) for p in ("hip", "knee", "ankle"))
        drop = ankle[:, 1] - hip[:, 1]
        along = _ratio(knee[:, 1] - hip[:, 1], drop, drop > 0)
        line_x = hip[:, 0] + along * (ankle[:, 0] - hip[:, 0])
        inside.append(inwards * np.sign(width) * (knee[:, 0] - line_x))
    seen = _seen(poses, "left", "hip", "knee", "ankle") & _seen(
        poses, "right", "hip", "knee", "ankle"
    )
    return _ratio((inside[0] + inside[1]) / 2, np.abs(width), seen & _feet_side_by_side(poses))


def _feet_side_by_side(poses: PoseSeries) -> np.ndarray:
    """(T,) False in a split stance (a lunge): one ankle more than 1.5 hip widths deeper than the
    other (world landmarks), where the knees' forward travel no longer cancels between the legs.
    A wide stance turned 35 deg from the camera stays below that."""
    world = poses.world
    depth = np.abs(world[:, Landmark.LEFT_ANKLE, 2] - world[:, Landmark.RIGHT_ANKLE, 2])
    hips = _length(world[:, Landmark.LEFT_HIP] - world[:, Landmark.RIGHT_HIP])
    with np.errstate(invalid="ignore"):
        return depth <= 1.5 * hips


# --- measures of one limb (the measured one, and the other as other_...) -------------------------
def _shoulder_to_ear_px(poses: PoseSeries, side: str) -> np.ndarray:
    shoulder = sided_landmark("shoulder", side)
    ear = Landmark.LEFT_EAR if side == "left" else Landmark.RIGHT_EAR
    distance = poses.pixels[:, shoulder, 1] - poses.pixels[:, ear, 1]
    return np.where(visible(poses, shoulder, ear), distance, np.nan)


def _elbow_flexion_deg(poses: PoseSeries, side: str) -> np.ndarray:
    return _flexion_deg(poses, side, ("shoulder", "elbow", "wrist"))


def _overhead_elbow_flexion_deg(poses: PoseSeries, side: str) -> np.ndarray:
    """Elbow flexion while the arm is overhead: the upper arm more than 30 deg above horizontal
    (its rise over half its length) and the wrist above the elbow. The top of a press, wherever
    the repetition's frames begin and end; a press's start, elbows out at shoulder height, is not
    a lockout."""
    shoulder, elbow, wrist = (_pixels(poses, p, side) for p in ("shoulder", "elbow", "wrist"))
    raised = shoulder[:, 1] - elbow[:, 1] > 0.5 * _length(elbow - shoulder)
    overhead = raised & (wrist[:, 1] < elbow[:, 1])
    return np.where(overhead, _elbow_flexion_deg(poses, side), np.nan)


def _upper_arm_from_trunk_deg(poses: PoseSeries, side: str) -> np.ndarray:
    points = ("hip", "shoulder", "elbow")
    raw = three_point_angle_deg(*(_pixels(poses, point, side) for point in points))
    return np.where(_seen(poses, side, *points), raw, np.nan)


def _knee_flexion_deg(poses: PoseSeries, side: str) -> np.ndarray:
    return _flexion_deg(poses, side, ("hip", "knee", "ankle"))


def _knee_past_toes_foot(poses: PoseSeries, side: str) -> np.ndarray:
    foot = _foot(poses, side)
    knee_x, toe_x = _pixels(poses, "knee", side)[:, 0], _pixels(poses, "foot_index", side)[:, 0]
    ahead = (knee_x - toe_x) * np.sign(foot[:, 0])
    return _ratio(ahead, _length(foot), _seen(poses, side, "knee", "heel", "foot_index"))


def _heel_height_foot(poses: PoseSeries, side: str) -> np.ndarray:
    foot = _foot(poses, side)  # heel to toes: y grows as the toes lie lower than the heel
    return _ratio(foot[:, 1], _length(foot), _seen(poses, side, "heel", "foot_index"))


def _heel_above_hip_foot(poses: PoseSeries, side: str) -> np.ndarray:
    rise = _pixels(poses, "hip", side)[:, 1] - _pixels(poses, "heel", side)[:, 1]
    usable = _seen(poses, side, "hip", "heel", "foot_index")
    return _ratio(rise, _length(_foot(poses, side)), usable)


def _wrist_to_thigh(poses: PoseSeries, side: str) -> np.ndarray:
    """Distance from the wrist to the hip-knee segment, in thigh lengths, while seated or rising."""
    hip, knee, wrist = (_pixels(poses, p, side) for p in ("hip", "knee", "wrist"))
    thigh = knee - hip
    length = _length(thigh)
    with np.errstate(invalid="ignore", divide="ignore"):
        along = np.clip(np.sum((wrist - hip) * thigh, axis=-1) / length**2, 0.0, 1.0)
    distance = _length(wrist - (hip + along[:, None] * thigh))
    seated = _knee_flexion_deg(poses, side) >= SEATED_KNEE_DEG
    return _ratio(distance, length, seated & _seen(poses, side, "wrist"))


_LIMB_MEASURES: dict[str, Callable[[PoseSeries, str], np.ndarray]] = {
    "shoulder_to_ear_px": _shoulder_to_ear_px,
    "elbow_flexion_deg": _elbow_flexion_deg,
    "overhead_elbow_flexion_deg": _overhead_elbow_flexion_deg,
    "upper_arm_from_trunk_deg": _upper_arm_from_trunk_deg,
    "knee_flexion_deg": _knee_flexion_deg,
    "knee_past_toes_foot": _knee_past_toes_foot,
    "heel_height_foot": _heel_height_foot,
    "heel_above_hip_foot": _heel_above_hip_foot,
    "wrist_to_thigh": _wrist_to_thigh,
}


# --- the checks in words (docs/form-checks.md is this output) -------------------------------------
def markdown_tables() -> str:
    """The rules and, per exercise of the library, how each fault is checked, as Markdown."""
    lines = [
        "| Fault | Measure (landmarks) | View | Judged | Default | Why | Source |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in _RULES:
        default = f"{rule.threshold:g} {rule.unit}"
        if rule.upright_threshold is not None:
            default += f" ({rule.upright_threshold:g} where the trunk stays upright)"
        lines.append(
            f"| `{rule.code}` | {rule.landmarks} | {rule.view or 'any'} | "
            f"{_JUDGED[rule.judgement]} | {default} | {rule.why} | {rule.source or '-'} |"
        )
    lines += ["", "| Exercise | Fault | Check |", "|---|---|---|"]
    for exercise in LIBRARY:
        for fault in exercise.form_faults:
            check = describe(fault, exercise)
            lines.append(f"| {exercise.name} | {fault.label} (`{fault.code}`) | {check} |")
    lines += ["", "| Observed by the therapist | Why not measured |", "|---|---|"]
    lines += [f"| `{code}` | {why} |" for code, why in OBSERVED_BY_THERAPIST.items()]
    return "\n".join(lines) + "\n"
