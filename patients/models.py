"""Therapists, patients, the exercise library, protocols and what patients report back.

Every model that appears in a URL has a UUID primary key: URLs never carry sequential ids.
"""

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from analysis.exercises import (
    AngleSpace,
    CameraView,
    ExerciseDefinition,
    FormFault,
    JointAngle,
    Laterality,
    Plane,
    RepThresholds,
)
from analysis.landmarks import SIDED_POINTS


class Side(models.TextChoices):
    LEFT = "left", "Left"
    RIGHT = "right", "Right"
    BOTH = "both", "Both"


class Therapist(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="therapist"
    )
    title = models.CharField(max_length=80, blank=True, help_text="e.g. PT, DPT, MSc Physio")
    clinic = models.CharField(max_length=120, blank=True)

    def __str__(self) -> str:
        return self.user.get_full_name() or self.user.get_username()


class PatientQuerySet(models.QuerySet["Patient"]):
    def of_therapist(self, therapist: Therapist) -> "PatientQuerySet":
        return self.filter(therapist=therapist)


class Patient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="patient"
    )
    therapist = models.ForeignKey(Therapist, on_delete=models.PROTECT, related_name="patients")
    date_of_birth = models.DateField(null=True, blank=True)
    condition = models.CharField(max_length=200, help_text="Diagnosis or reason for referral")
    affected_side = models.CharField(max_length=5, choices=Side.choices)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["user__last_name", "user__first_name"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return self.user.get_full_name() or self.user.get_username()

    @property
    def patient_id(self) -> uuid.UUID:
        # Every record of a patient names them by `patient_id`, the patient too: the audit trail
        # (below this app) files its entries by that id without knowing the model.
        return self.pk

    @property
    def has_set_password(self) -> bool:
        return self.user.has_usable_password()


class ExerciseQuerySet(models.QuerySet["Exercise"]):
    def visible_to(self, therapist: Therapist) -> "ExerciseQuerySet":
        """The built-in library plus the therapist's own exercises."""
        return self.filter(Q(owner__isnull=True) | Q(owner=therapist))


_POINT_CHOICES = [(point, point.replace("_", " ")) for point in SIDED_POINTS]


class Exercise(models.Model):
    """One exercise of the library: the stored form of `analysis.exercises.ExerciseDefinition`.

    Built-in exercises (no owner) are kept in step with `analysis.exercises.LIBRARY` after every
    migration; therapists add their own (owner set), visible to them only.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        Therapist, null=True, blank=True, on_delete=models.CASCADE, related_name="exercises"
    )
    slug = models.SlugField(max_length=60)
    name = models.CharField(max_length=100)
    joint = models.CharField(max_length=30)
    motion = models.CharField(max_length=30)
    proximal_point = models.CharField(max_length=20, choices=_POINT_CHOICES)
    vertex_point = models.CharField(max_length=20, choices=_POINT_CHOICES)
    distal_point = models.CharField(max_length=20, choices=_POINT_CHOICES)
    raw_at_zero_deg = models.FloatField(
        validators=[MinValueValidator(0), MaxValueValidator(180)],
        help_text="Three-point angle between the landmarks at the anatomical position (0 deg).",
    )
    increases_with_motion = models.BooleanField(
        help_text="Whether the three-point angle grows as the joint moves away from 0 deg."
    )
    normal_min_deg = models.FloatField(default=0)
    normal_max_deg = models.FloatField(help_text="Adult normal active ROM (AAOS)")
    plane = models.CharField(max_length=12, choices=[(p.value, p.value) for p in Plane])
    camera_view = models.CharField(max_length=8, choices=[(v.value, v.value) for v in CameraView])
    angle_space = models.CharField(
        max_length=4,
        choices=[(AngleSpace.IMAGE_2D.value, "2D image"), (AngleSpace.WORLD_3D.value, "3D world")],
    )
    angle_space_reason = models.TextField()
    laterality = models.CharField(
        max_length=16,
        choices=[
            (Laterality.ONE_SIDE.value, "one side"),
            (Laterality.BOTH_TOGETHER.value, "both sides together"),
            (Laterality.ALTERNATING.value, "alternating sides"),
        ],
    )
    default_target_deg = models.FloatField()
    rest_deg = models.FloatField(
        help_text="Textbook start angle; with the peak it gives the movement's direction"
    )
    peak_deg = models.FloatField(
        help_text="Textbook turning angle: the range expected of a first repetition, before the "
        "patient's own is known (no repetition has to reach it)"
    )
    min_duration_s = models.FloatField(
        default=0.3,
        help_text="A repetition stays beyond the middle of its range at least this long",
    )
    min_amplitude_deg = models.FloatField(
        default=20, help_text="Smaller movements are noise or fidgeting, never repetitions"
    )
    rests_at_either_end = models.BooleanField(
        default=False,
        help_text="May be started from either end of its range (a press begun at lockout)",
    )
    max_velocity_dps = models.FloatField(
        default=800,
        help_text="Faster peak angular velocities are glitches, never movement (deg/s)",
    )
    instructions = models.TextField()
    form_faults = models.JSONField(default=list, blank=True)
    outward_is_concentric = models.BooleanField(
        default=True,
        help_text="Moving from rest towards the peak works against gravity (unticked for the "
        "lowering of a squat or push-up)",
    )

    objects = ExerciseQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug"], condition=Q(owner__isnull=True), name="unique_builtin_slug"
            ),
            models.UniqueConstraint(fields=["owner", "slug"], name="unique_custom_slug"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_builtin(self) -> bool:
        return self.owner_id is None

    @property
    def angle_label(self) -> str:
        return f"{self.joint} {self.motion}"

    def definition(self) -> ExerciseDefinition:
        """The analysis-side definition; raises ValueError when the numbers are inconsistent."""
        return ExerciseDefinition(
            slug=self.slug,
            name=self.name,
            angle=JointAngle(
                joint=self.joint,
                motion=self.motion,
                proximal=self.proximal_point,
                vertex=self.vertex_point,
                distal=self.distal_point,
                raw_at_zero_deg=self.raw_at_zero_deg,
                increases_with_motion=self.increases_with_motion,
                normal_min_deg=self.normal_min_deg,
                normal_max_deg=self.normal_max_deg,
            ),
            plane=Plane(self.plane),
            camera_view=CameraView(self.camera_view),
            angle_space=AngleSpace(self.angle_space),
            angle_space_reason=self.angle_space_reason,
            laterality=Laterality(self.laterality),
            default_target_deg=self.default_target_deg,
            thresholds=RepThresholds(
                rest_deg=self.rest_deg,
                peak_deg=self.peak_deg,
                min_duration_s=self.min_duration_s,
                min_amplitude_deg=self.min_amplitude_deg,
                rests_at_either_end=self.rests_at_either_end,
                max_velocity_dps=self.max_velocity_dps,
            ),
            instructions=self.instructions,
            form_faults=tuple(
                FormFault(
                    f["code"],
                    f["label"],
                    f.get("threshold"),
                    f.get("observed_by_therapist", False),
                )
                for f in self.form_faults
            ),
            outward_is_concentric=self.outward_is_concentric,
        )

    def clean(self) -> None:
        try:
            self.definition()
        except (ValueError, KeyError, TypeError) as error:
            raise ValidationError(str(error)) from error

    @staticmethod
    def fields_from_definition(definition: ExerciseDefinition) -> dict[str, Any]:
        angle, thresholds = definition.angle, definition.thresholds
        return {
            "name": definition.name,
            "joint": angle.joint,
            "motion": angle.motion,
            "proximal_point": angle.proximal,
            "vertex_point": angle.vertex,
            "distal_point": angle.distal,
            "raw_at_zero_deg": angle.raw_at_zero_deg,
            "increases_with_motion": angle.increases_with_motion,
            "normal_min_deg": angle.normal_min_deg,
            "normal_max_deg": angle.normal_max_deg,
            "plane": definition.plane.value,
            "camera_view": definition.camera_view.value,
            "angle_space": definition.angle_space.value,
            "angle_space_reason": definition.angle_space_reason,
            "laterality": definition.laterality.value,
            "default_target_deg": definition.default_target_deg,
            "rest_deg": thresholds.rest_deg,
            "peak_deg": thresholds.peak_deg,
            "min_duration_s": thresholds.min_duration_s,
            "min_amplitude_deg": thresholds.min_amplitude_deg,
            "rests_at_either_end": thresholds.rests_at_either_end,
            "max_velocity_dps": thresholds.max_velocity_dps,
            "instructions": definition.instructions,
            "form_faults": [
                {
                    "code": f.code,
                    "label": f.label,
                    "threshold": f.threshold,
                    "observed_by_therapist": f.observed_by_therapist,
                }
                for f in definition.form_faults
            ],
            "outward_is_concentric": definition.outward_is_concentric,
        }


class Protocol(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    therapist = models.ForeignKey(Therapist, on_delete=models.CASCADE, related_name="protocols")
    name = models.CharField(max_length=120)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Prescription(models.Model):
    """One exercise line of a protocol."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    protocol = models.ForeignKey(Protocol, on_delete=models.CASCADE, related_name="prescriptions")
    exercise = models.ForeignKey(Exercise, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)
    side = models.CharField(max_length=5, choices=Side.choices)
    sets = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    reps = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    hold_s = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(120)])
    rest_s = models.PositiveSmallIntegerField(default=60, validators=[MaxValueValidator(600)])
    target_rom_deg = models.FloatField(
        validators=[MinValueValidator(0), MaxValueValidator(180)],
        help_text="Joint angle to reach at the peak of each repetition (0 deg = anatomical)",
    )
    sessions_per_week = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(14)]
    )
    notes = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["protocol", "position"]

    def __str__(self) -> str:
        return f"{self.exercise} ({self.get_side_display().lower()}) {self.sets}x{self.reps}"


class AssignmentQuerySet(models.QuerySet["Assignment"]):
    def active_on(self, day: datetime.date) -> "AssignmentQuerySet":
        return self.filter(start_date__lte=day, end_date__gte=day)

    def overlapping(self, first: datetime.date, last: datetime.date) -> "AssignmentQuerySet":
        return self.filter(start_date__lte=last, end_date__gte=first)


class Assignment(models.Model):
    """A protocol prescribed to a patient for a date range (both days included)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="assignments")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="assignments")
    start_date = models.DateField()
    end_date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["-start_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=models.F("start_date")), name="assignment_dates_ordered"
            )
        ]

    def __str__(self) -> str:
        return f"{self.protocol} for {self.patient} ({self.start_date} to {self.end_date})"

    def clean(self) -> None:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "The end date cannot be before the start date."})

    def is_active_on(self, day: datetime.date) -> bool:
        return self.start_date <= day <= self.end_date
