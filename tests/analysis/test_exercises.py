"""The exercise library as data: complete, consistent, mirrored and stored as defined."""

import pytest

from analysis.exercises import BY_SLUG, LIBRARY, ExerciseDefinition, JointAngle, RepThresholds
from analysis.landmarks import Landmark
from patients.models import Exercise

REQUIRED_SLUGS = {
    "squat",
    "sit_to_stand",
    "lunge",
    "heel_slide",
    "seated_knee_extension",
    "straight_leg_raise",
    "standing_hip_abduction",
    "shoulder_flexion",
    "shoulder_abduction",
    "front_raise",
    "shoulder_press",
    "elbow_flexion",
    "push_up",
    "jumping_jack",
}


def test_the_library_has_every_required_exercise() -> None:
    assert set(BY_SLUG) >= REQUIRED_SLUGS
    assert len(BY_SLUG) == len(LIBRARY)


@pytest.mark.parametrize("exercise", LIBRARY, ids=lambda e: e.slug)
def test_each_exercise_is_clinically_consistent(exercise: ExerciseDefinition) -> None:
    angle, thresholds = exercise.angle, exercise.thresholds
    assert angle.normal_min_deg <= exercise.default_target_deg <= angle.normal_max_deg
    assert angle.normal_min_deg <= min(thresholds.rest_deg, thresholds.peak_deg)
    assert max(thresholds.rest_deg, thresholds.peak_deg) <= angle.normal_max_deg
    # The peak threshold lies between rest and target, so a repetition reaching the target counts.
    lo, hi = sorted((thresholds.rest_deg, exercise.default_target_deg))
    assert lo <= thresholds.peak_deg <= hi
    assert exercise.instructions and exercise.form_faults and exercise.angle_space_reason


def test_left_and_right_landmarks_mirror_each_other() -> None:
    knee = BY_SLUG["squat"].angle
    assert knee.landmarks("left") == (Landmark.LEFT_HIP, Landmark.LEFT_KNEE, Landmark.LEFT_ANKLE)
    assert knee.landmarks("right") == (
        Landmark.RIGHT_HIP,
        Landmark.RIGHT_KNEE,
        Landmark.RIGHT_ANKLE,
    )


@pytest.mark.parametrize(
    "slug, raw, clinical",
    [
        ("squat", 180.0, 0.0),  # straight knee is 0 deg flexion
        ("squat", 90.0, 90.0),
        ("shoulder_flexion", 0.0, 0.0),  # arm at the side
        ("shoulder_flexion", 170.0, 170.0),
        ("elbow_flexion", 30.0, 150.0),
    ],
)
def test_clinical_angles_start_at_the_anatomical_position(
    slug: str, raw: float, clinical: float
) -> None:
    assert BY_SLUG[slug].angle.clinical_deg(raw) == clinical


def test_both_directions_of_motion_are_expressed() -> None:
    assert BY_SLUG["squat"].thresholds.direction == 1
    assert BY_SLUG["seated_knee_extension"].thresholds.direction == -1


def test_inconsistent_definitions_are_refused() -> None:
    with pytest.raises(ValueError):
        RepThresholds(rest_deg=20, peak_deg=25)
    with pytest.raises(ValueError):
        JointAngle("knee", "flexion", "hip", "nose", "ankle", 180, False, 0, 135)


@pytest.mark.django_db
def test_the_database_holds_the_library_as_defined() -> None:
    for definition in LIBRARY:
        stored = Exercise.objects.get(slug=definition.slug, owner=None)
        assert stored.definition() == definition
