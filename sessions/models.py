"""Exercise sessions and their repetitions: numbers derived from landmarks, never images."""

import math
import uuid
from collections.abc import Sequence
from typing import Protocol

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Ceil

from analysis.repetitions import SidedRep
from patients.models import Exercise, Patient, Prescription, Side


class RepMetrics(SidedRep, Protocol):
    """What a session summary needs of a repetition (a row, or a not yet stored record)."""

    @property
    def quality(self) -> str: ...


# A session counts towards the plan (adherence, the week's count on Today, missed-session alerts)
# when at least this share of its prescribed repetitions was counted: a patient who stood in front
# of the camera and ended the session, or stopped after a few repetitions, has not done it. A
# session the patient marked as done without the camera counts on their word (an exercise diary).
PLAN_SHARE = 0.5


class ExerciseSessionQuerySet(models.QuerySet["ExerciseSession"]):
    def completed(self) -> "ExerciseSessionQuerySet":
        return self.filter(status=ExerciseSession.Status.COMPLETED)

    def work_done(self) -> "ExerciseSessionQuerySet":
        """Completed sessions that count towards the plan: enough repetitions counted (see
        PLAN_SHARE), or done without the camera by the patient's word."""
        return (
            self.completed()
            .alias(_prescribed=F("target_sets") * F("target_reps") * F("sides_in_turn"))
            .filter(
                Q(reps_counted__gte=Ceil(F("_prescribed") * PLAN_SHARE))
                | Q(self_reported=True, reps_counted=0)
            )
        )


class ExerciseSession(models.Model):
    """One sitting of one prescribed exercise: its sets of repetitions and their summary.

    The prescription's targets are copied in at the start, so history stays true when a protocol
    is edited later.
    """

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        ABANDONED = "abandoned", "Abandoned"

    class Outcome(models.TextChoices):
        """What an ended session measured, from its counted repetitions."""

        DONE = "done", "Done"
        PARTLY_DONE = "partly_done", "Partly done"
        REPORTED = "reported", "Done without the camera (reported)"
        NOT_MEASURED = "not_measured", "Nothing measured"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="sessions")
    prescription = models.ForeignKey(
        Prescription, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    exercise = models.ForeignKey(Exercise, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=5, choices=Side.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    target_sets = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    target_reps = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    target_rom_deg = models.FloatField()
    sides_in_turn = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="2: each set is done on the left, then on the right (target_reps per side)",
    )
    reps_counted = models.PositiveIntegerField(default=0)
    partial_reps = models.PositiveIntegerField(default=0)
    best_rom_deg = models.FloatField(null=True, blank=True)
    mean_rom_deg = models.FloatField(null=True, blank=True)
    best_peak_deg = models.FloatField(
        null=True, blank=True, help_text="The angle reached furthest towards the target"
    )
    self_reported = models.BooleanField(
        default=False,
        help_text="Marked as done by the patient without the camera: nothing was measured",
    )

    objects = ExerciseSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["patient", "status", "started_at"])]

    def __str__(self) -> str:
        return f"{self.exercise} on {self.started_at:%Y-%m-%d} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.IN_PROGRESS

    @property
    def reps_per_set(self) -> int:
        return self.target_reps * self.sides_in_turn

    @property
    def prescribed_reps(self) -> int:
        return self.target_sets * self.reps_per_set

    @property
    def reps_needed_for_plan(self) -> int:
        return math.ceil(self.prescribed_reps * PLAN_SHARE)

    @property
    def outcome(self) -> "ExerciseSession.Outcome | None":
        """None while the session is open."""
        if self.is_open:
            return None
        if self.reps_counted >= self.prescribed_reps:
            return self.Outcome.DONE
        if self.reps_counted:
            return self.Outcome.PARTLY_DONE
        return self.Outcome.REPORTED if self.self_reported else self.Outcome.NOT_MEASURED

    @property
    def counts_towards_plan(self) -> bool:
        """The rule of ExerciseSessionQuerySet.work_done, for a session at hand."""
        if self.status != self.Status.COMPLETED:
            return False
        return (
            self.reps_counted >= self.reps_needed_for_plan or self.outcome == self.Outcome.REPORTED
        )

    def summarise(self, reps: Sequence[RepMetrics]) -> None:
        """Set the summary from the counted repetitions (their numbers from those not graded
        poor, when there are any). The best peak is the highest angle for
        exercises that move the angle up (squat), the lowest for those that move it down (knee
        extension from sitting), so it compares directly with the target angle."""
        self.reps_counted = len(reps)
        if not reps:
            self.best_rom_deg = self.mean_rom_deg = self.best_peak_deg = None
            return
        # The numbers leave out the repetitions measured poorly, unless all were.
        reps = [rep for rep in reps if rep.quality != Repetition.Quality.POOR] or reps
        self.best_rom_deg = max(rep.rom_deg for rep in reps)
        self.mean_rom_deg = round(sum(rep.rom_deg for rep in reps) / len(reps), 1)
        upward = self.exercise.definition().thresholds.direction > 0
        self.best_peak_deg = (
            max(rep.max_deg for rep in reps) if upward else min(rep.min_deg for rep in reps)
        )

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class Repetition(models.Model):
    """One counted repetition. Times are seconds from the session's start."""

    class Quality(models.TextChoices):  # analysis.quality.Grade
        GOOD = "good", "Good"
        FAIR = "fair", "Fair"
        POOR = "poor", "Poor"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(
        ExerciseSession, on_delete=models.CASCADE, related_name="repetitions"
    )
    set_number = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    index = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1)], help_text="1-based position within its set"
    )
    side = models.CharField(max_length=5, choices=Side.choices)
    start_s = models.FloatField()
    end_s = models.FloatField()
    min_deg = models.FloatField()
    max_deg = models.FloatField()
    rom_deg = models.FloatField()
    duration_s = models.FloatField()
    concentric_s = models.FloatField(null=True, blank=True)
    eccentric_s = models.FloatField(null=True, blank=True)
    peak_velocity_dps = models.FloatField(help_text="Peak angular velocity, deg/s")
    hold_s = models.FloatField(
        null=True, blank=True, help_text="Longest time held in the target band, s"
    )
    symmetry_pct = models.FloatField(
        null=True, blank=True, help_text="100 x smaller / larger ROM of the two sides"
    )
    form_flags = models.JSONField(default=list, blank=True)
    quality = models.CharField(
        max_length=4,
        choices=Quality,
        blank=True,
        help_text="How far the measured angle can be trusted (blank: recorded before grading)",
    )
    quality_reasons = models.JSONField(
        default=list, blank=True, help_text="What lowered the grade, for the therapist"
    )
    trace_deg = models.JSONField(
        default=list, blank=True, help_text="The angle over the repetition, downsampled"
    )

    class Meta:
        ordering = ["session", "set_number", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "set_number", "index"], name="unique_repetition_per_set"
            )
        ]

    def __str__(self) -> str:
        return f"set {self.set_number} rep {self.index}: {self.rom_deg:.0f} deg"


# Repetitions whose angle could not be measured reliably (analysis.quality): every reader leaves
# them out of a session's numbers, unless all of the session's repetitions are.
GRADED_POOR = Q(quality=Repetition.Quality.POOR)
