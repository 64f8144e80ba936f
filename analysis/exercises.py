"""The exercise library as typed, frozen data: what each exercise measures and how it is counted.

Angles follow the clinical convention: 0 deg is the anatomical position (knee fully extended, arm
at the side). A joint angle is measured from three side-neutral body points (proximal, vertex,
distal); `raw_at_zero_deg` is the three-point angle at the anatomical position and
`increases_with_motion` says whether the three-point angle grows or shrinks as the joint moves, so
the clinical angle is `raw - zero` or `zero - raw`. Normal ranges are adult active ROM (AAOS).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from analysis.landmarks import SIDED_POINTS, Landmark, sided_landmark

if TYPE_CHECKING:
    import numpy as np

_End = TypeVar("_End")
# One angle, or an array of them (one per frame): the data stays free of numpy at run time.
_Degrees = TypeVar("_Degrees", float, "np.ndarray")


class Plane(StrEnum):
    SAGITTAL = "sagittal"
    FRONTAL = "frontal"
    TRANSVERSE = "transverse"


class CameraView(StrEnum):
    SIDE = "side"
    FRONT = "front"


class AngleSpace(StrEnum):
    IMAGE_2D = "2d"
    WORLD_3D = "3d"


class Laterality(StrEnum):
    ONE_SIDE = "one_side"  # the prescribed side only
    BOTH_TOGETHER = "both_together"  # both limbs move at once; both are measured
    ALTERNATING = "alternating"  # the limbs take turns; every turn is one repetition


def sides_in_turn(laterality: Laterality, side: str) -> tuple[str, ...]:
    """The sides a set is done on, one after the other: an exercise for one side prescribed for
    both is done on the left, then on the right, every set. Otherwise one turn ("both" for
    exercises whose limbs move together or take turns within the set)."""
    if side == "both" and laterality is Laterality.ONE_SIDE:
        return ("left", "right")
    return (side,)


# --- Towards the target ----------------------------------------------------------------------
# `direction` is +1 when the angle grows towards the target (a squat), -1 when it falls (a knee
# extension from sitting): RepThresholds.direction, or a series' copy of it.


def peak_end(direction: int, low: _End, high: _End) -> _End:
    """Of the two ends of a range (or of what stands for them), the one the movement heads for: a
    repetition peaks at its highest angle when the angle grows towards the target, at its lowest
    when it falls."""
    return high if direction > 0 else low


def furthest(direction: int, values_deg: Iterable[float]) -> float:
    """Of some angles, the one reached furthest towards the target: the highest when the angle
    grows towards it, the lowest when it falls (the best of a session's or a week's peaks)."""
    return max(values_deg) if direction > 0 else min(values_deg)


@dataclass(frozen=True)
class JointAngle:
    joint: str
    motion: str
    proximal: str
    vertex: str
    distal: str
    raw_at_zero_deg: float
    increases_with_motion: bool
    normal_min_deg: float
    normal_max_deg: float

    def __post_init__(self) -> None:
        for point in (self.proximal, self.vertex, self.distal):
            if point not in SIDED_POINTS:
                raise ValueError(f"{self.joint} {self.motion}: unknown body point {point!r}")
        if not 0 <= self.raw_at_zero_deg <= 180:
            raise ValueError("a three-point angle lies between 0 and 180 deg")

    @property
    def label(self) -> str:
        return f"{self.joint} {self.motion}"

    def landmarks(self, side: str) -> tuple[Landmark, Landmark, Landmark]:
        return (
            sided_landmark(self.proximal, side),
            sided_landmark(self.vertex, side),
            sided_landmark(self.distal, side),
        )

    def clinical_deg(self, raw_deg: _Degrees) -> _Degrees:
        """The clinical angle for a three-point angle measured between the landmarks (or for an
        array of them, element-wise)."""
        offset = raw_deg - self.raw_at_zero_deg
        return offset if self.increases_with_motion else -offset


@dataclass(frozen=True)
class RepThresholds:
    """What the repetition counter (analysis.counting) needs of an exercise, in clinical degrees.

    `rest_deg` and `peak_deg` are the textbook start and turning angles: they give the direction of
    the movement (peak above rest: the angle goes up, as in a squat; below: down, as in a knee
    extension from sitting) and the range expected of a first repetition before the patient's own
    is known. No repetition has to reach them: the counter follows the patient's own range.
    `min_amplitude_deg` and `min_duration_s` (time beyond the middle of the repetition's range)
    are absolute floors against noise, fidgeting and landmark glitches.
    `rests_at_either_end`: the exercise may be started from either end of its range (a press begun
    at lockout); the counter rests where the first movement starts. `max_velocity_dps`: the
    fastest peak angular velocity the body produces in this exercise (analysis.quality).
    """

    rest_deg: float
    peak_deg: float
    min_duration_s: float = 0.3
    min_amplitude_deg: float = 20.0
    rests_at_either_end: bool = False
    # Faster than this, a repetition's peak angular velocity is a landmark glitch, not movement:
    # controlled exercises take 1-3 s a repetition, and 800 deg/s would cross a knee's whole range
    # in a sixth of a second. Ballistic ones (a jumping jack's arm swing) go faster.
    max_velocity_dps: float = 800.0

    def __post_init__(self) -> None:
        if abs(self.peak_deg - self.rest_deg) < 10:
            raise ValueError("rest and peak thresholds need a gap of at least 10 deg")

    @property
    def direction(self) -> int:
        return 1 if self.peak_deg > self.rest_deg else -1

    def shortfall_deg(self, target_deg: float, angle_deg: float) -> float:
        """How far an angle stays short of the target in the direction of motion (negative:
        beyond it)."""
        return self.direction * (target_deg - angle_deg)

    def peak_end(self, low: _End, high: _End) -> _End:
        """The end of a range the movement heads for (see the module's `peak_end`)."""
        return peak_end(self.direction, low, high)

    def furthest(self, values_deg: Iterable[float]) -> float:
        """The angle reached furthest towards the target (see the module's `furthest`)."""
        return furthest(self.direction, values_deg)


@dataclass(frozen=True)
class FormFault:
    """A fault an exercise may show. Whether and how it is measured is the rule of the same code
    in analysis.form (no rule: observed by the therapist); `threshold`, in the rule's unit,
    replaces the rule's default for this exercise (None: the default).
    `observed_by_therapist`: never flagged automatically, even where a rule exists (the
    exercise's set-up keeps the camera from seeing it)."""

    code: str
    label: str
    threshold: float | None = None
    observed_by_therapist: bool = False


@dataclass(frozen=True)
class ExerciseDefinition:
    slug: str
    name: str
    angle: JointAngle
    plane: Plane
    camera_view: CameraView
    angle_space: AngleSpace
    angle_space_reason: str
    laterality: Laterality
    default_target_deg: float
    thresholds: RepThresholds
    instructions: str
    form_faults: tuple[FormFault, ...]
    # Whether moving from rest towards the peak works against gravity (raising an arm) or is the
    # controlled lowering of a squat or push-up; this says which phase is concentric.
    outward_is_concentric: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.angle.normal_min_deg, self.angle.normal_max_deg
        if not lo <= self.default_target_deg <= hi:
            raise ValueError(f"{self.slug}: default target outside the normal range {lo}-{hi}")

    @property
    def normal_end_deg(self) -> float:
        """The AAOS normal limit on the target's side: the top of the normal range when the angle
        grows towards the target, the bottom when it falls."""
        return self.thresholds.peak_end(self.angle.normal_min_deg, self.angle.normal_max_deg)

    @property
    def form_labels(self) -> dict[str, str]:
        """Form fault code -> the label shown for it."""
        return {fault.code: fault.label for fault in self.form_faults}


# --- The measured angles -------------------------------------------------------------------------
KNEE_FLEXION = JointAngle("knee", "flexion", "hip", "knee", "ankle", 180, False, 0, 135)
HIP_FLEXION = JointAngle("hip", "flexion", "shoulder", "hip", "knee", 180, False, 0, 120)
# Abduction is the same three points seen in the frontal plane: the thigh leaving the trunk line.
HIP_ABDUCTION = JointAngle("hip", "abduction", "shoulder", "hip", "knee", 180, False, 0, 45)
SHOULDER_FLEXION = JointAngle("shoulder", "flexion", "hip", "shoulder", "elbow", 0, True, 0, 180)
SHOULDER_ABDUCTION = JointAngle(
    "shoulder", "abduction", "hip", "shoulder", "elbow", 0, True, 0, 180
)
ELBOW_FLEXION = JointAngle("elbow", "flexion", "shoulder", "elbow", "wrist", 180, False, 0, 150)

_IN_PLANE_SIDE = (
    "The motion is in the sagittal plane, which a side view sees face-on: image-plane angles are "
    "exact there, while BlazePose's depth estimate is the noisiest coordinate."
)
_IN_PLANE_FRONT = (
    "The motion is in the frontal plane, which a front view sees face-on: image-plane angles are "
    "exact there, while BlazePose's depth estimate is the noisiest coordinate."
)
_TRUNK_LEAN = FormFault("trunk_lean", "Trunk leans too far forward")
_SHOULDER_HIKING = FormFault("shoulder_hiking", "Shoulder hikes up towards the ear")
_KNEE_VALGUS = FormFault("knee_valgus", "Knee collapses inwards")

LIBRARY: tuple[ExerciseDefinition, ...] = (
    ExerciseDefinition(
        slug="squat",
        name="Squat",
        angle=KNEE_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.BOTH_TOGETHER,
        default_target_deg=90,
        thresholds=RepThresholds(
            rest_deg=20, peak_deg=60, min_duration_s=0.3, min_amplitude_deg=20
        ),
        instructions=(
            "Stand with feet hip-width apart, side-on to the camera. Sit back and down as if onto "
            "a chair, keeping your chest up and heels on the floor, then stand up tall."
        ),
        form_faults=(
            _TRUNK_LEAN,
            _KNEE_VALGUS,
            FormFault("heels_rise", "Heels lift off the floor"),
            FormFault("shallow_depth", "Squat stops well short of the target depth"),
        ),
        outward_is_concentric=False,
    ),
    ExerciseDefinition(
        slug="sit_to_stand",
        name="Sit to stand",
        angle=KNEE_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.BOTH_TOGETHER,
        default_target_deg=90,
        thresholds=RepThresholds(
            rest_deg=20, peak_deg=65, min_duration_s=0.5, min_amplitude_deg=25
        ),
        instructions=(
            "Sit on a firm chair, side-on to the camera, feet flat. Lean forward and stand up "
            "without using your hands, then sit down again slowly."
        ),
        form_faults=(
            _TRUNK_LEAN,
            FormFault("uses_hands", "Pushes up with the hands"),
            FormFault("drops_into_chair", "Sits down without control"),
        ),
        outward_is_concentric=False,
    ),
    ExerciseDefinition(
        slug="lunge",
        name="Forward lunge",
        angle=KNEE_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.ALTERNATING,
        default_target_deg=90,
        thresholds=RepThresholds(
            rest_deg=20, peak_deg=60, min_duration_s=0.3, min_amplitude_deg=25
        ),
        instructions=(
            "Stand side-on to the camera. Step forward and lower the back knee towards the floor "
            "until the front knee is bent to about a right angle, then push back to standing. "
            "Alternate legs."
        ),
        form_faults=(
            FormFault("knee_past_toes", "Front knee travels far past the toes"),
            _TRUNK_LEAN,
            # Filmed from the side, and seen from the front a split stance turns the knees'
            # forward travel into sideways shifts that read as valgus.
            FormFault("knee_valgus", "Knee collapses inwards", observed_by_therapist=True),
        ),
        outward_is_concentric=False,
    ),
    ExerciseDefinition(
        slug="heel_slide",
        name="Heel slide",
        angle=KNEE_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.ONE_SIDE,
        default_target_deg=90,
        thresholds=RepThresholds(
            rest_deg=20, peak_deg=50, min_duration_s=0.5, min_amplitude_deg=15
        ),
        instructions=(
            "Lie on your back with the camera at your side. Slide the heel towards your buttock, "
            "bending the knee as far as is comfortable, hold, then slide it back until the leg is "
            "straight."
        ),
        form_faults=(
            FormFault("heel_lift", "Heel lifts off the surface"),
            FormFault("hip_rotation", "Hip rolls outwards"),
        ),
    ),
    ExerciseDefinition(
        slug="seated_knee_extension",
        name="Seated knee extension",
        angle=KNEE_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.ONE_SIDE,
        default_target_deg=0,
        thresholds=RepThresholds(
            rest_deg=60, peak_deg=20, min_duration_s=0.3, min_amplitude_deg=15
        ),
        instructions=(
            "Sit tall on a chair, side-on to the camera. Straighten the knee fully, tighten the "
            "thigh, hold, then lower the foot slowly."
        ),
        form_faults=(
            FormFault("extension_lag", "Knee does not straighten fully"),
            FormFault("leans_back", "Leans back to lift the leg"),
        ),
    ),
    ExerciseDefinition(
        slug="straight_leg_raise",
        name="Straight leg raise",
        angle=HIP_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.ONE_SIDE,
        default_target_deg=45,
        thresholds=RepThresholds(
            rest_deg=10, peak_deg=30, min_duration_s=0.3, min_amplitude_deg=15
        ),
        instructions=(
            "Lie on your back with the camera at your side, the other knee bent. Tighten the thigh "
            "of the straight leg and lift it to the height of the bent knee, hold, lower slowly."
        ),
        form_faults=(
            FormFault("knee_bend", "Knee of the lifted leg bends"),
            FormFault("trunk_lift", "Upper body lifts off the surface"),
        ),
    ),
    ExerciseDefinition(
        slug="standing_hip_abduction",
        name="Standing hip abduction",
        angle=HIP_ABDUCTION,
        plane=Plane.FRONTAL,
        camera_view=CameraView.FRONT,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_FRONT,
        laterality=Laterality.ONE_SIDE,
        default_target_deg=30,
        thresholds=RepThresholds(rest_deg=8, peak_deg=20, min_duration_s=0.3, min_amplitude_deg=10),
        instructions=(
            "Stand facing the camera, holding a chair for balance. Lift the leg out to the side "
            "with the toes pointing forward, hold, lower slowly."
        ),
        form_faults=(
            FormFault("trunk_lean", "Trunk leans to the side"),
            FormFault("hip_hike", "Pelvis hitches up instead of the leg moving"),
        ),
    ),
    ExerciseDefinition(
        slug="shoulder_flexion",
        name="Shoulder flexion",
        angle=SHOULDER_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.ONE_SIDE,
        default_target_deg=160,
        thresholds=RepThresholds(
            rest_deg=30, peak_deg=90, min_duration_s=0.3, min_amplitude_deg=20
        ),
        instructions=(
            "Stand side-on to the camera. Raise the straight arm forwards and up as high as is "
            "comfortable, thumb leading, then lower it slowly."
        ),
        form_faults=(
            FormFault("trunk_lean", "Leans the trunk back to gain height"),
            _SHOULDER_HIKING,
            FormFault("elbow_bend", "Elbow bends during the raise"),
        ),
    ),
    ExerciseDefinition(
        slug="shoulder_abduction",
        name="Shoulder abduction",
        angle=SHOULDER_ABDUCTION,
        plane=Plane.FRONTAL,
        camera_view=CameraView.FRONT,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_FRONT,
        laterality=Laterality.ONE_SIDE,
        default_target_deg=160,
        thresholds=RepThresholds(
            rest_deg=30, peak_deg=90, min_duration_s=0.3, min_amplitude_deg=20
        ),
        instructions=(
            "Stand facing the camera. Raise the straight arm out to the side and up as high as is "
            "comfortable, palm turned up past shoulder height, then lower it slowly."
        ),
        form_faults=(_SHOULDER_HIKING, FormFault("trunk_lean", "Trunk leans to the other side")),
    ),
    ExerciseDefinition(
        slug="front_raise",
        name="Front raise",
        angle=SHOULDER_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.BOTH_TOGETHER,
        default_target_deg=90,
        thresholds=RepThresholds(
            rest_deg=25, peak_deg=70, min_duration_s=0.3, min_amplitude_deg=20
        ),
        instructions=(
            "Stand side-on to the camera holding light weights. Raise both straight arms in front "
            "of you to shoulder height, pause, lower slowly."
        ),
        form_faults=(
            _SHOULDER_HIKING,
            FormFault("trunk_swing", "Swings the trunk to lift the weights"),
            FormFault("elbow_bend", "Elbows bend during the raise"),
        ),
    ),
    ExerciseDefinition(
        slug="shoulder_press",
        name="Shoulder press",
        angle=SHOULDER_ABDUCTION,
        plane=Plane.FRONTAL,
        camera_view=CameraView.FRONT,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_FRONT,
        laterality=Laterality.BOTH_TOGETHER,
        default_target_deg=165,
        thresholds=RepThresholds(
            rest_deg=100,
            peak_deg=145,
            min_duration_s=0.3,
            min_amplitude_deg=20,
            rests_at_either_end=True,
        ),
        instructions=(
            "Stand facing the camera, hands at shoulder height with elbows out to the sides. Press "
            "both hands straight overhead until the arms are straight, then lower to the start."
        ),
        form_faults=(
            _SHOULDER_HIKING,
            FormFault("back_arch", "Arches the lower back"),
            FormFault("incomplete_lockout", "Arms do not straighten overhead"),
        ),
    ),
    ExerciseDefinition(
        slug="elbow_flexion",
        name="Elbow flexion (biceps curl)",
        angle=ELBOW_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.ONE_SIDE,
        default_target_deg=130,
        thresholds=RepThresholds(
            rest_deg=30, peak_deg=90, min_duration_s=0.3, min_amplitude_deg=20
        ),
        instructions=(
            "Stand side-on to the camera, upper arm by your side. Bend the elbow to bring the hand "
            "to the shoulder, then lower it until the arm is straight."
        ),
        form_faults=(
            FormFault("elbow_drift", "Upper arm swings forward"),
            FormFault("trunk_swing", "Swings the trunk to lift the weight"),
        ),
    ),
    ExerciseDefinition(
        slug="push_up",
        name="Push-up",
        angle=ELBOW_FLEXION,
        plane=Plane.SAGITTAL,
        camera_view=CameraView.SIDE,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_SIDE,
        laterality=Laterality.BOTH_TOGETHER,
        default_target_deg=90,
        thresholds=RepThresholds(
            rest_deg=30, peak_deg=70, min_duration_s=0.3, min_amplitude_deg=20
        ),
        instructions=(
            "Side-on to the camera, hands under the shoulders and body in a straight line (on the "
            "knees if prescribed). Lower the chest by bending the elbows, then push back up."
        ),
        form_faults=(
            FormFault("hip_sag", "Hips sag towards the floor"),
            FormFault("hip_pike", "Hips pike up"),
            FormFault("partial_depth", "Elbows bend far less than the target"),
        ),
        outward_is_concentric=False,
    ),
    ExerciseDefinition(
        slug="jumping_jack",
        name="Jumping jack",
        angle=SHOULDER_ABDUCTION,
        plane=Plane.FRONTAL,
        camera_view=CameraView.FRONT,
        angle_space=AngleSpace.IMAGE_2D,
        angle_space_reason=_IN_PLANE_FRONT,
        laterality=Laterality.BOTH_TOGETHER,
        default_target_deg=150,
        thresholds=RepThresholds(
            rest_deg=40,
            peak_deg=120,
            min_duration_s=0.2,
            min_amplitude_deg=30,
            max_velocity_dps=1500,
        ),
        instructions=(
            "Stand facing the camera. Jump the feet apart while swinging the arms out and up "
            "overhead, then jump back to feet together, arms by your sides."
        ),
        form_faults=(
            FormFault("incomplete_arm_raise", "Arms do not reach overhead"),
            FormFault("stiff_landing", "Lands with straight knees"),
        ),
    ),
)

BY_SLUG: dict[str, ExerciseDefinition] = {exercise.slug: exercise for exercise in LIBRARY}
