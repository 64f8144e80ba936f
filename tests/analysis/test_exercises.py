"""The exercise library as data: complete, consistent, mirrored and stored as defined."""

import numpy as np
import pytest

from analysis.exercises import (
    BY_SLUG,
    LIBRARY,
    ExerciseDefinition,
    JointAngle,
    RepThresholds,
    furthest,
    peak_end,
)
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


def test_clinical_angles_of_an_array_are_those_of_each_angle() -> None:
    elbow = BY_SLUG["elbow_flexion"].angle  # the three-point angle shrinks as the elbow bends
    shoulder = BY_SLUG["shoulder_flexion"].angle  # it grows as the arm rises
    raw = np.array([180.0, 90.0, 30.0, np.nan])
    for angle in (elbow, shoulder):
        clinical = angle.clinical_deg(raw)
        assert isinstance(clinical, np.ndarray)
        np.testing.assert_array_equal(clinical[:3], [angle.clinical_deg(x) for x in raw[:3]])
        assert np.isnan(clinical[3])
    np.testing.assert_array_equal(elbow.clinical_deg(raw[:3]), [0.0, 90.0, 150.0])
    np.testing.assert_array_equal(shoulder.clinical_deg(raw[:3]), [180.0, 90.0, 30.0])


def test_the_peak_and_the_best_angle_lie_towards_the_target() -> None:
    up = BY_SLUG["squat"]  # the knee angle grows towards the target
    down = BY_SLUG["seated_knee_extension"]  # it falls towards full extension
    assert up.thresholds.peak_end(12.0, 95.0) == 95.0
    assert down.thresholds.peak_end(12.0, 95.0) == 12.0
    assert up.thresholds.peak_end("min", "max") == "max"  # or what stands for the two ends
    assert up.thresholds.furthest([60.0, 95.0, 80.0]) == 95.0
    assert down.thresholds.furthest(iter([20.0, 12.0, 15.0])) == 12.0
    # The helpers for a bare direction (a series' copy of it) are the same rule.
    assert peak_end(1, 12.0, 95.0) == 95.0 and peak_end(-1, 12.0, 95.0) == 12.0
    assert furthest(1, [3.0, 7.0]) == 7.0 and furthest(-1, [3.0, 7.0]) == 3.0


def test_the_normal_limit_is_the_one_on_the_targets_side() -> None:
    assert BY_SLUG["squat"].normal_end_deg == 135  # knee flexion 0-135
    assert BY_SLUG["seated_knee_extension"].normal_end_deg == 0
    assert BY_SLUG["shoulder_flexion"].normal_end_deg == 180


def test_form_labels_map_each_fault_code_to_its_label() -> None:
    assert BY_SLUG["heel_slide"].form_labels == {
        "heel_lift": "Heel lifts off the surface",
        "hip_rotation": "Hip rolls outwards",
    }
    for exercise in LIBRARY:
        assert list(exercise.form_labels) == [fault.code for fault in exercise.form_faults]


@pytest.mark.django_db
def test_a_stored_exercise_gives_the_labels_it_holds() -> None:
    for stored in Exercise.objects.filter(owner=None):
        expected = {fault["code"]: fault["label"] for fault in stored.form_faults}
        assert stored.definition().form_labels == expected


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
