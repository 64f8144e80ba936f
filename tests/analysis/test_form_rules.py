"""Every form rule on synthetic skeletons with exact answers.

A skeleton is built in the body's own frame (metres: left, forward, down) and seen by an
orthographic camera from a given yaw: 0 facing the camera, +90 side-on facing image-right (the
right side nearer), -90 facing image-left. Its pixels are 500 px a metre; its world landmarks are
the same points with depth. Each repetition's measures are taken one frame at a time, as a live
session takes them, and judged as analysis.counting judges a repetition.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from analysis.exercises import BY_SLUG, LIBRARY, CameraView, ExerciseDefinition, FormFault
from analysis.form import (
    OBSERVED_BY_THERAPIST,
    RULES,
    Judgement,
    describe,
    fault_value,
    form_flags,
    form_measures,
    is_measured,
    markdown_tables,
    rule_for,
    threshold_for,
)
from analysis.kinematics import PoseSeries
from analysis.landmarks import Landmark, sided_landmark

DOCS = Path(__file__).resolve().parents[2] / "docs" / "form-checks.md"
Point = tuple[float, float, float]  # left, forward, down (metres, body frame)
Body = dict[Landmark, Point]
SIDES = ("left", "right")


# --- skeletons -----------------------------------------------------------------------------------
def _lm(point: str, side: str) -> Landmark:
    if point == "ear":
        return Landmark[f"{side.upper()}_EAR"]
    return sided_landmark(point, side)


def _both(point: str, left: float, forward: float, down: float) -> Body:
    return {_lm(point, "left"): (left, forward, down), _lm(point, "right"): (-left, forward, down)}


def _standing() -> Body:
    body: Body = {Landmark.NOSE: (0.0, 0.1, -0.68)}
    for point, left, forward, down in (
        ("ear", 0.08, 0.0, -0.7),
        ("shoulder", 0.18, 0.0, -0.5),
        ("elbow", 0.2, 0.0, -0.22),
        ("wrist", 0.2, 0.0, 0.05),
        ("hip", 0.1, 0.0, 0.0),
        ("knee", 0.1, 0.0, 0.45),
        ("ankle", 0.1, 0.0, 0.9),
        ("heel", 0.1, -0.05, 0.95),
        ("foot_index", 0.1, 0.2, 0.95),
    ):
        body |= _both(point, left, forward, down)
    return body


def _seated() -> Body:
    body = _standing()
    for point, forward, down in (("knee", 0.45, 0.0), ("ankle", 0.45, 0.45)):
        body |= _both(point, 0.1, forward, down)
    return body | _both("heel", 0.1, 0.4, 0.5) | _both("foot_index", 0.1, 0.65, 0.5)


def _lying() -> Body:
    """On the back, head towards -forward, face up (-down); the foot points up, 0.25 m long."""
    body: Body = {Landmark.NOSE: (0.0, -0.72, -0.1)}
    for point, left, forward, down in (
        ("ear", 0.08, -0.7, 0.0),
        ("shoulder", 0.18, -0.5, 0.0),
        ("elbow", 0.2, -0.22, 0.02),
        ("wrist", 0.2, 0.05, 0.02),
        ("hip", 0.1, 0.0, 0.0),
        ("knee", 0.1, 0.45, 0.0),
        ("ankle", 0.1, 0.9, 0.0),
        ("heel", 0.1, 0.92, 0.05),
        ("foot_index", 0.1, 0.92, -0.2),
    ):
        body |= _both(point, left, forward, down)
    return body


def _plank(hip_drop: float) -> Body:
    """A push-up's top, head towards +forward; the hips `hip_drop` below the shoulder-knee line."""
    body: Body = {Landmark.NOSE: (0.0, 0.78, 0.05)}
    for point, left, forward, down in (
        ("ear", 0.08, 0.7, 0.0),
        ("shoulder", 0.18, 0.5, 0.0),
        ("elbow", 0.2, 0.5, 0.25),
        ("wrist", 0.2, 0.5, 0.5),
        ("hip", 0.1, 0.0, hip_drop),
        ("knee", 0.1, -0.5, 0.0),
        ("ankle", 0.1, -1.0, 0.0),
        ("heel", 0.1, -1.05, -0.05),
        ("foot_index", 0.1, -0.95, 0.15),
    ):
        body |= _both(point, left, forward, down)
    return body


UPPER_BODY = ("ear", "shoulder", "elbow", "wrist")


def _rotated(body: Body, names: list[Landmark], pivot: Point, deg: float, plane: str) -> Body:
    """The landmarks turned about the pivot by `deg`: in the sagittal plane towards forward (from
    "up"), in the frontal plane towards the left."""
    out, (c, s) = dict(body), (math.cos(math.radians(deg)), math.sin(math.radians(deg)))
    for name in names:
        left, forward, down = (a - b for a, b in zip(body[name], pivot, strict=True))
        if plane == "sagittal":
            forward, down = forward * c - down * s, forward * s + down * c
        else:
            left, down = left * c - down * s, left * s + down * c
        out[name] = (left + pivot[0], forward + pivot[1], down + pivot[2])
    return out


def _upper(body: Body) -> list[Landmark]:
    return [Landmark.NOSE] + [_lm(p, s) for p in UPPER_BODY for s in SIDES]


def _lean(body: Body, deg: float, plane: str = "sagittal") -> Body:
    return _rotated(body, _upper(body), (0.0, 0.0, 0.0), deg, plane)


def _mirrored(body: Body) -> Body:
    out: Body = {}
    for landmark, (left, forward, down) in body.items():
        name = landmark.name
        if name.startswith(("LEFT_", "RIGHT_")):
            name = ("RIGHT_" if name.startswith("LEFT_") else "LEFT_") + name.split("_", 1)[1]
        out[Landmark[name]] = (-left, forward, down)
    return out


def _seen(body: Body, yaw_deg: float) -> PoseSeries:
    """One frame: the body seen from `yaw_deg`."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    pixels, world = np.full((1, 33, 2), np.nan), np.full((1, 33, 3), np.nan)
    visibility = np.zeros((1, 33))
    for landmark, (left, forward, down) in body.items():
        x, depth = left * c + forward * s, left * s - forward * c
        world[0, landmark] = (x, down, depth)
        pixels[0, landmark] = (640 + 500 * x, 360 + 500 * down)
        visibility[0, landmark] = 1.0
    return PoseSeries(np.zeros(1), pixels, world, visibility)


def _measures(frames: list[Body], side: str, yaw_deg: float) -> dict[str, np.ndarray]:
    """Frame by frame, as a live session measures."""
    each = [form_measures(_seen(body, yaw_deg), side) for body in frames]
    return {name: np.concatenate([m[name] for m in each]) for name in each[0]}


# --- the repetitions, one per rule: the fault at magnitude m (in the rule's unit) -----------------
def _leaning(m: float) -> list[Body]:
    return [_standing(), _lean(_standing(), m / 2), _lean(_standing(), m)]


def _hiking(m: float) -> list[Body]:
    hiked = dict(_standing())
    for side in SIDES:  # shoulder 0.2 m below the ear
        left, forward, down = hiked[_lm("shoulder", side)]
        hiked[_lm("shoulder", side)] = (left, forward, down - 0.2 * m)
    return [_standing(), hiked]


def _arm(body: Body, side: str, upper: Point, fore: Point) -> Body:
    """The arm from the shoulder along two unit directions, upper arm 0.28 m, forearm 0.25 m."""
    sl, sf, sd = body[_lm("shoulder", side)]
    elbow = (sl + 0.28 * upper[0], sf + 0.28 * upper[1], sd + 0.28 * upper[2])
    wrist = (elbow[0] + 0.25 * fore[0], elbow[1] + 0.25 * fore[1], elbow[2] + 0.25 * fore[2])
    return body | {_lm("elbow", side): elbow, _lm("wrist", side): wrist}


def _raising(m: float) -> list[Body]:
    """A front raise to horizontal with the elbow bent m deg (forearm pointing up)."""
    r = math.radians(m)
    raised = _standing()
    for side in SIDES:
        raised = _arm(raised, side, (0.0, 1.0, 0.0), (0.0, math.cos(r), -math.sin(r)))
    return [_standing(), raised]


def _valgus(m: float) -> list[Body]:
    """Knees m hip widths (0.2 m) inside the hip-ankle lines."""
    return [_standing(), _standing() | _both("knee", 0.1 - 0.2 * m, 0.0, 0.45)]


def _past_toes(m: float) -> list[Body]:
    """Knees m foot lengths (0.25 m) ahead of the toe tips."""
    return [_standing(), _standing() | _both("knee", 0.1, 0.2 + 0.25 * m, 0.45)]


def _heels_up(m: float) -> list[Body]:
    """The foot turned about the toes until the heel is m foot lengths above them."""
    heel = _both("heel", 0.1, 0.2 - 0.25 * math.cos(math.asin(m)), 0.95 - 0.25 * m)
    return [_standing(), _standing() | heel]


def _heel_lifting(m: float) -> list[Body]:
    lifted = _lying() | _both("heel", 0.1, 0.92, 0.05 - 0.25 * m)
    return [_lying(), lifted | _both("foot_index", 0.1, 0.92, -0.2 - 0.25 * m)]


def _hip_hiking(m: float) -> list[Body]:
    """The right hip m deg up the line between the hips (0.2 m apart)."""
    hiked = _standing() | {Landmark.RIGHT_HIP: (-0.1, 0.0, -0.2 * math.tan(math.radians(m)))}
    return [_standing(), hiked]


def _sagging(m: float) -> list[Body]:
    return [_plank(0.0), _plank(0.5 * math.tan(math.radians(m / 2)))]


def _piking(m: float) -> list[Body]:
    return [_plank(0.0), _plank(-0.5 * math.tan(math.radians(m / 2)))]


def _swinging(m: float) -> list[Body]:
    return [_lean(_standing(), -m / 2), _standing(), _lean(_standing(), m / 2)]


def _leaning_back(m: float) -> list[Body]:
    return [_seated(), _lean(_seated(), -m / 2), _lean(_seated(), -m)]


def _knee_bending(m: float) -> list[Body]:
    """Both legs of a lying body lifted 30 deg, the knees bent m deg on the way."""
    legs = [_lm(p, s) for p in ("knee", "ankle", "heel", "foot_index") for s in SIDES]
    lifted = _rotated(_lying(), legs, (0.0, 0.0, 0.0), -30.0, "sagittal")
    shank = [_lm(p, s) for p in ("ankle", "heel", "foot_index") for s in SIDES]
    bent = _rotated(lifted, shank, lifted[Landmark.LEFT_KNEE], m, "sagittal")
    return [_lying(), lifted, bent]


def _trunk_lifting(m: float) -> list[Body]:
    upper = [Landmark.NOSE] + [_lm(p, s) for p in UPPER_BODY for s in SIDES]
    return [_lying(), _rotated(_lying(), upper, (0.0, 0.0, 0.0), m, "sagittal")]


def _press(m: float) -> list[Body]:
    """Bottom, half way, top with the elbows m deg short of straight, half way, bottom."""
    frames = []
    for rise, bend in ((0.0, 90.0), (60.0, 60.0), (90.0, m), (60.0, 60.0), (0.0, 90.0)):
        body = _standing()
        for side, out in (("left", 1.0), ("right", -1.0)):
            a, f = math.radians(rise), math.radians(rise + bend)
            upper = (out * math.cos(a), 0.0, -math.sin(a))
            body = _arm(body, side, upper, (out * math.cos(f), 0.0, -math.sin(f)))
        frames.append(body)
    return frames


def _curling(m: float) -> list[Body]:
    """Upper arms m deg forward of the trunk, the elbows bent to a curl."""
    r = math.radians(m)
    curled = _standing()
    for side in SIDES:
        curled = _arm(curled, side, (0.0, math.sin(r), math.cos(r)), (0.0, 0.3, -0.95))
    return [_standing(), curled, _standing()]


def _hands_on_thighs(m: float) -> list[Body]:
    """Standing, seated with the wrists m thigh lengths (0.45 m) above the thighs, standing."""
    seated = _seated() | _both("wrist", 0.2, 0.2, -0.45 * m)
    return [_standing(), seated, _standing()]


@dataclass(frozen=True)
class Scenario:
    code: str
    slug: str
    frames: Callable[[float], list[Body]]
    yaw_deg: float = 90.0  # the view the rule needs (side: 90, front: 0)

    def __str__(self) -> str:
        return self.code

    @property
    def exercise(self) -> ExerciseDefinition:
        return BY_SLUG[self.slug]

    @property
    def fault(self) -> FormFault:
        return next(f for f in self.exercise.form_faults if f.code == self.code)

    @property
    def threshold(self) -> float:
        threshold = threshold_for(self.fault, self.exercise)
        assert threshold is not None
        return threshold

    @property
    def below_is_fault(self) -> bool:
        return RULES[self.code].judgement is Judgement.CLOSEST

    def value(self, m: float, *, side: str = "right", yaw: float | None = None) -> float:
        frames = self.frames(m)
        if side == "left":
            frames = [_mirrored(body) for body in frames]
        measures = _measures(frames, side, self.yaw_deg if yaw is None else yaw)
        value = fault_value(self.fault, self.exercise, measures, peak_deg=0.0, target_deg=0.0)
        assert value is not None
        return value

    def flagged(self, m: float, *, side: str = "right", yaw: float | None = None) -> bool:
        frames = self.frames(m)
        if side == "left":
            frames = [_mirrored(body) for body in frames]
        measures = _measures(frames, side, self.yaw_deg if yaw is None else yaw)
        flags = form_flags(self.exercise, measures, peak_deg=0.0, target_deg=0.0)
        return self.code in flags


SCENARIOS = [
    Scenario("trunk_lean", "squat", _leaning),
    Scenario("shoulder_hiking", "shoulder_abduction", _hiking, yaw_deg=0.0),
    Scenario("elbow_bend", "front_raise", _raising),
    Scenario("knee_valgus", "squat", _valgus, yaw_deg=0.0),
    Scenario("knee_past_toes", "lunge", _past_toes),
    Scenario("heels_rise", "squat", _heels_up),
    Scenario("heel_lift", "heel_slide", _heel_lifting),
    Scenario("hip_hike", "standing_hip_abduction", _hip_hiking, yaw_deg=0.0),
    Scenario("hip_sag", "push_up", _sagging),
    Scenario("hip_pike", "push_up", _piking),
    Scenario("trunk_swing", "elbow_flexion", _swinging),
    Scenario("leans_back", "seated_knee_extension", _leaning_back),
    Scenario("knee_bend", "straight_leg_raise", _knee_bending),
    Scenario("trunk_lift", "straight_leg_raise", _trunk_lifting),
    Scenario("incomplete_lockout", "shoulder_press", _press, yaw_deg=0.0),
    Scenario("elbow_drift", "elbow_flexion", _curling),
    Scenario("uses_hands", "sit_to_stand", _hands_on_thighs),
]


def _just(scenario: Scenario) -> tuple[float, float]:
    """Values just short of the fault and just beyond it."""
    step = 0.02 * scenario.threshold
    if scenario.below_is_fault:
        return scenario.threshold + step, scenario.threshold - step
    return scenario.threshold - step, scenario.threshold + step


# --- each rule -----------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_the_rule_reads_the_fault_exactly(scenario: Scenario) -> None:
    for m in (0.5 * scenario.threshold, scenario.threshold):
        assert scenario.value(m) == pytest.approx(m, abs=1e-9)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_the_rule_flags_only_beyond_its_threshold(scenario: Scenario) -> None:
    short, beyond = _just(scenario)
    assert not scenario.flagged(short)
    assert not scenario.flagged(scenario.threshold)
    assert scenario.flagged(beyond)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_a_mirrored_body_measured_on_the_other_side_reads_the_same(scenario: Scenario) -> None:
    # The mirror image of the scene: the left side measured, seen from the mirrored yaw.
    m, yaw = scenario.threshold * 0.8, -scenario.yaw_deg
    assert scenario.value(m, side="left", yaw=yaw) == pytest.approx(m, abs=1e-9)
    short, beyond = _just(scenario)
    assert not scenario.flagged(short, side="left", yaw=yaw)
    assert scenario.flagged(beyond, side="left", yaw=yaw)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_the_rule_reads_the_same_facing_either_way(scenario: Scenario) -> None:
    # Side-on facing image-left, or from behind for a front-view rule.
    m, other_way = scenario.threshold * 0.8, scenario.yaw_deg - 180.0
    assert scenario.value(m, yaw=other_way) == pytest.approx(m, abs=1e-9)
    assert scenario.flagged(_just(scenario)[1], yaw=other_way)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if RULES[s.code].view], ids=str)
def test_a_rule_needing_a_view_does_not_judge_the_other_view(scenario: Scenario) -> None:
    gross = 0.0 if scenario.below_is_fault else 3 * scenario.threshold
    other_view = 90.0 - scenario.yaw_deg
    assert np.isnan(scenario.value(gross, yaw=other_view))
    assert not scenario.flagged(gross, yaw=other_view)
    assert scenario.flagged(gross)


def test_every_measured_rule_has_a_scenario() -> None:
    measured = {code for code, rule in RULES.items() if rule.judgement is not Judgement.SHORTFALL}
    assert measured == {scenario.code for scenario in SCENARIOS}


# --- views and limbs -----------------------------------------------------------------------------
def test_frames_turned_beyond_35_degrees_from_the_view_are_not_judged() -> None:
    valgus = next(s for s in SCENARIOS if s.code == "knee_valgus")
    assert valgus.flagged(0.5, yaw=34.0)
    assert not valgus.flagged(0.5, yaw=36.0)
    elbow = next(s for s in SCENARIOS if s.code == "elbow_bend")
    assert elbow.flagged(45.0, yaw=56.0)
    assert not elbow.flagged(45.0, yaw=54.0)


def test_the_far_limb_of_a_side_view_is_not_judged() -> None:
    # Side-on facing image-right, the right arm is nearer; the left one is behind the body.
    front_raise = BY_SLUG["front_raise"]
    r = math.radians(50.0)
    bent = (0.0, math.cos(r), -math.sin(r))
    for bent_side, flagged in (("left", False), ("right", True)):
        body = _standing()
        for side in SIDES:
            fore = bent if side == bent_side else (0.0, 1.0, 0.0)
            body = _arm(body, side, (0.0, 1.0, 0.0), fore)
        measures = _measures([_standing(), body], "right", 90.0)
        flags = form_flags(front_raise, measures, peak_deg=90.0, target_deg=90.0)
        assert ("elbow_bend" in flags) is flagged


def test_a_one_side_exercise_measured_on_the_hidden_side_judges_the_seen_one() -> None:
    # A two-arm curl prescribed for "both" sides is measured on the right; seen from the left.
    curl = next(s for s in SCENARIOS if s.code == "elbow_drift")
    assert curl.flagged(45.0, yaw=-90.0)


def test_knee_valgus_ignores_a_deep_squat_turned_from_the_camera() -> None:
    # Knees far forward of the hip-ankle lines: turned 30 deg, one knee shifts in and the other
    # out in the image; the mean over the legs cancels it.
    deep = _standing() | _both("knee", 0.12, 0.3, 0.42) | _both("hip", 0.1, -0.25, 0.3)
    for yaw in (-30.0, 0.0, 30.0):
        measures = _measures([_standing(), deep], "right", yaw)
        assert np.nanmax(measures["knee_valgus_hip"]) < 0.05
        assert "knee_valgus" not in form_flags(
            BY_SLUG["squat"], measures, peak_deg=90.0, target_deg=90.0
        )


def test_knee_valgus_is_not_measured_in_a_split_stance() -> None:
    split = _standing() | _both("ankle", 0.1, 0.0, 0.9) | {Landmark.LEFT_ANKLE: (0.1, 0.7, 0.9)}
    measures = _measures([split], "right", 0.0)
    assert np.isnan(measures["knee_valgus_hip"]).all()


def test_hands_resting_by_the_thighs_while_standing_are_not_a_push() -> None:
    standing = _standing() | _both("wrist", 0.12, 0.0, 0.2)  # hands on the thighs, knees straight
    measures = _measures([standing, standing], "right", 90.0)
    assert np.isnan(measures["wrist_to_thigh"]).all()
    crossed = _seated() | _both("wrist", -0.1, 0.1, -0.35)  # arms crossed on the chest
    measures = _measures([_standing(), crossed, _standing()], "right", 90.0)
    assert "uses_hands" not in form_flags(
        BY_SLUG["sit_to_stand"], measures, peak_deg=90.0, target_deg=90.0
    )


def test_a_press_whose_lockout_lies_at_the_repetitions_edge_is_not_judged() -> None:
    # Counted from lockout: the repetition starts at the top and ends short of it.
    press = next(s for s in SCENARIOS if s.code == "incomplete_lockout")
    frames = press.frames(30.0)[2:]  # top (30 deg short), half way, bottom
    measures = _measures(frames, "right", 0.0)
    value = fault_value(press.fault, press.exercise, measures, peak_deg=0.0, target_deg=0.0)
    assert value is not None and math.isnan(value)


def test_a_change_is_not_judged_when_its_start_was_out_of_view() -> None:
    heels = next(s for s in SCENARIOS if s.code == "heels_rise")
    frames = heels.frames(0.5)
    measures = _measures(frames, "right", 90.0)
    measures["body_turn_deg"] = np.array([10.0, 90.0])  # the first frame seen from the front
    value = fault_value(heels.fault, heels.exercise, measures, peak_deg=0.0, target_deg=0.0)
    assert value is not None and math.isnan(value)


# --- thresholds ----------------------------------------------------------------------------------
def test_the_trunk_lean_limit_depends_on_the_exercise() -> None:
    # A squat brings the trunk forward; raising an arm or a leg sideways does not.
    lean = _measures(_leaning(40.0), "right", 90.0)
    sideways = _measures([_standing(), _lean(_standing(), 20.0, "frontal")], "right", 0.0)
    assert "trunk_lean" not in form_flags(BY_SLUG["squat"], lean, peak_deg=90, target_deg=90)
    for slug in ("shoulder_abduction", "standing_hip_abduction"):
        flags = form_flags(BY_SLUG[slug], sideways, peak_deg=90, target_deg=90)
        assert "trunk_lean" in flags
    squat, raise_ = BY_SLUG["squat"], BY_SLUG["shoulder_abduction"]
    assert threshold_for(squat.form_faults[0], squat) == 55.0
    assert threshold_for(raise_.form_faults[1], raise_) == 15.0


def test_an_exercise_may_set_its_own_threshold() -> None:
    squat = BY_SLUG["squat"]
    strict = replace(squat, form_faults=(FormFault("trunk_lean", "Leans", threshold=30.0),))
    lean = _measures(_leaning(40.0), "right", 90.0)
    assert form_flags(squat, lean, peak_deg=90, target_deg=90) == []
    assert form_flags(strict, lean, peak_deg=90, target_deg=90) == ["trunk_lean"]
    assert describe(strict.form_faults[0], strict) == "measured (threshold 30 deg)"


@pytest.mark.parametrize(
    "slug, code, target, threshold",
    [
        ("squat", "shallow_depth", 90.0, 15.0),
        ("push_up", "partial_depth", 90.0, 15.0),
        ("jumping_jack", "incomplete_arm_raise", 150.0, 15.0),
        ("seated_knee_extension", "extension_lag", 0.0, 10.0),
    ],
)
def test_a_peak_short_of_the_target_is_flagged_beyond_the_threshold(
    slug: str, code: str, target: float, threshold: float
) -> None:
    exercise = BY_SLUG[slug]
    short = -exercise.thresholds.direction  # towards rest
    for by, flagged in ((threshold - 0.1, False), (threshold, False), (threshold + 0.1, True)):
        peak = target + short * by
        flags = form_flags(exercise, {}, peak_deg=peak, target_deg=target)
        assert (code in flags) is flagged


# --- the registry --------------------------------------------------------------------------------
def test_every_library_fault_is_measured_or_observed_by_the_therapist() -> None:
    assert not set(RULES) & set(OBSERVED_BY_THERAPIST)
    for exercise in LIBRARY:
        for fault in exercise.form_faults:
            measured = is_measured(fault.code) and not fault.observed_by_therapist
            observed = fault.code in OBSERVED_BY_THERAPIST or fault.observed_by_therapist
            assert measured != observed, f"{exercise.slug}: {fault.code}"
            assert (threshold_for(fault, exercise) is not None) == measured
            check = describe(fault, exercise)
            assert check.startswith("measured (threshold") if measured else "observed" in check


def test_the_required_faults_are_measured() -> None:
    for code in (
        "knee_valgus",
        "knee_past_toes",
        "heels_rise",
        "heel_lift",
        "hip_hike",
        "hip_sag",
        "hip_pike",
        "trunk_swing",
        "leans_back",
        "extension_lag",
        "knee_bend",
        "trunk_lift",
        "incomplete_lockout",
        "elbow_drift",
        "uses_hands",
    ):
        assert is_measured(code), code
    for code, view in (
        ("knee_valgus", CameraView.FRONT),
        ("knee_past_toes", CameraView.SIDE),
        ("hip_sag", CameraView.SIDE),
        ("hip_pike", CameraView.SIDE),
    ):
        rule = rule_for(code)
        assert rule is not None and rule.view is view


def test_a_fault_without_a_rule_is_never_flagged() -> None:
    squat = BY_SLUG["squat"]
    custom = replace(squat, form_faults=(FormFault("wobbly_ankle", "Ankle wobbles"),))
    measures = _measures(_leaning(80.0), "right", 90.0)
    assert form_flags(custom, measures, peak_deg=0.0, target_deg=90.0) == []
    assert describe(custom.form_faults[0], custom) == "observed by the therapist"
    lunge = BY_SLUG["lunge"]
    valgus = next(f for f in lunge.form_faults if f.code == "knee_valgus")
    assert valgus.observed_by_therapist and threshold_for(valgus, lunge) is None
    knees_in = _measures(_valgus(1.0), "right", 0.0)
    assert "knee_valgus" not in form_flags(lunge, knees_in, peak_deg=90, target_deg=90)


def test_every_measure_a_rule_reads_is_taken() -> None:
    measures = _measures([_standing()], "right", 0.0)
    for rule in RULES.values():
        if rule.judgement is not Judgement.SHORTFALL:
            assert rule.measure in measures
            assert not rule.limb or f"other_{rule.measure}" in measures
    assert not [name for name in measures if name.startswith("quality_")]


def test_unknown_measures_are_ignored() -> None:
    lean = _measures(_leaning(70.0), "right", 90.0)
    extra = lean | {"quality_jitter_px": np.array([99.0, 99.0, 99.0]), "something": np.zeros(3)}
    squat = BY_SLUG["squat"]
    assert form_flags(squat, extra, peak_deg=90, target_deg=90) == ["trunk_lean"]


def test_measures_come_from_each_frame_alone() -> None:
    # The live tracker measures one frame at a time: a series gives the same frame by frame.
    frames = _press(25.0) + _sagging(30.0) + _heel_lifting(0.5)
    series = [_seen(body, yaw) for body in frames for yaw in (0.0, 50.0, 90.0)]
    together = PoseSeries(
        np.arange(len(series)) / 30,
        np.concatenate([p.pixels for p in series]),
        np.concatenate([p.world for p in series]),
        np.concatenate([p.visibility for p in series]),
    )
    whole = form_measures(together, "left")
    for i, one in enumerate(series):
        for name, values in form_measures(one, "left").items():
            np.testing.assert_array_equal(whole[name][i : i + 1], values, err_msg=name)


def test_a_frame_without_a_pose_measures_nothing() -> None:
    empty = form_measures(PoseSeries.empty_frames(np.zeros(3)), "right")
    assert all(np.isnan(values).all() and values.shape == (3,) for values in empty.values())
    squat = BY_SLUG["squat"]
    assert form_flags(squat, empty, peak_deg=90, target_deg=90) == []


def test_the_docs_table_is_the_rules_own() -> None:
    assert markdown_tables() in DOCS.read_text()
