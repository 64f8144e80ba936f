"""Exercise sessions, their repetitions, what the patient reports after them and the alerts they
raise: numbers derived from landmarks, never images."""

import datetime
import math
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Protocol

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Ceil
from django.utils import timezone

from analysis.repetitions import RepetitionMetrics, SidedRep
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

    def in_local_days(self, first: datetime.date, last: datetime.date) -> "ExerciseSessionQuerySet":
        """Sessions started on a local day (the current time zone's) in [first, last].

        The bounds are aware datetimes, [first 00:00, the day after last 00:00), rather than a
        `started_at__date` lookup: a plain range keeps the (patient, status, started_at) index
        usable. Each bound is the local midnight of its own day, so a period across a change of
        summer time is still whole local days.
        """
        start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
        end = timezone.make_aware(
            datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time.min)
        )
        return self.filter(started_at__gte=start, started_at__lt=end)


class ExerciseSession(models.Model):
    """One sitting of one prescribed exercise: its sets of repetitions and their summary.

    The prescription's targets are copied in at the start, so history stays true when a protocol
    is edited later.
    """

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        ABANDONED = "abandoned", "Abandoned"

    class Source(models.TextChoices):
        LIVE = "live", "Live camera"
        RECORDING = "recording", "Uploaded recording"

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
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.LIVE)

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
        poor, when there are any). The best peak is the angle reached furthest towards the
        target (RepThresholds.furthest): the highest for exercises that move the angle up
        (squat), the lowest for those that move it down (knee extension from sitting), so it
        compares directly with the target angle."""
        self.reps_counted = len(reps)
        if not reps:
            self.best_rom_deg = self.mean_rom_deg = self.best_peak_deg = None
            return
        # The numbers leave out the repetitions measured poorly, unless all were.
        reps = [rep for rep in reps if rep.quality != Repetition.Quality.POOR] or reps
        self.best_rom_deg = max(rep.rom_deg for rep in reps)
        self.mean_rom_deg = round(sum(rep.rom_deg for rep in reps) / len(reps), 1)
        thresholds = self.exercise.definition().thresholds
        self.best_peak_deg = thresholds.furthest(
            thresholds.peak_end(rep.min_deg, rep.max_deg) for rep in reps
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
    similarity = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="0-100: how closely the repetition followed the therapist's reference (DTW); "
        "blank without a reference",
    )
    deviating_joints = models.JSONField(
        default=list, blank=True, help_text="The joints furthest from the reference, worst first"
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

    @staticmethod
    def stored_fields(data: RepetitionMetrics) -> dict[str, Any]:
        """What a row keeps of a repetition record: not its joint traces, which serve only to
        score it against the reference movement."""
        return {k: v for k, v in asdict(data).items() if k != "joint_traces_deg"}


# Repetitions whose angle could not be measured reliably (analysis.quality): every reader leaves
# them out of a session's numbers, unless all of the session's repetitions are.
GRADED_POOR = Q(quality=Repetition.Quality.POOR)


BORG_CR10_CHOICES = [
    (0.0, "0 - nothing at all"),
    (0.5, "0.5 - very, very weak"),
    (1.0, "1 - very weak"),
    (2.0, "2 - weak"),
    (3.0, "3 - moderate"),
    (4.0, "4 - somewhat strong"),
    (5.0, "5 - strong"),
    (6.0, "6"),
    (7.0, "7 - very strong"),
    (8.0, "8"),
    (9.0, "9"),
    (10.0, "10 - very, very strong (maximal)"),
]


class PainReport(models.Model):
    """What the patient reports after a session: pain (NRS 0-10) and exertion (Borg CR-10)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="pain_reports")
    session = models.OneToOneField(
        ExerciseSession,
        on_delete=models.CASCADE,
        related_name="pain_report",
    )
    pain_nrs = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(10)], help_text="0 = no pain, 10 = worst pain imaginable"
    )
    effort_borg = models.FloatField(choices=BORG_CR10_CHOICES)
    comment = models.CharField(max_length=500, blank=True)
    reported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Moved here from the patients app by a state-only migration: the table kept its name.
        db_table = "patients_painreport"
        ordering = ["-reported_at"]
        constraints = [
            models.CheckConstraint(condition=Q(pain_nrs__lte=10), name="pain_nrs_0_to_10"),
            models.CheckConstraint(
                condition=Q(effort_borg__gte=0, effort_borg__lte=10), name="effort_borg_0_to_10"
            ),
        ]

    def __str__(self) -> str:
        return f"pain {self.pain_nrs}/10, effort {self.effort_borg}/10"


class AlertQuerySet(models.QuerySet["Alert"]):
    def open(self) -> "AlertQuerySet":
        return self.filter(acknowledged_at__isnull=True)


class Alert(models.Model):
    class Kind(models.TextChoices):
        MISSED_SESSIONS = "missed_sessions", "Missed sessions"
        ROM_FALLING = "rom_falling", "ROM falling"
        ROM_STALLED = "rom_stalled", "ROM stalled"
        PAIN_RISING = "pain_rising", "Pain rising"
        FORM_FLAGS = "form_flags", "Repeated form flags"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What the alert is about (e.g. "rom_stalled:squat:right", see analysis.alerts): a patient has
    # at most one open alert per key. Blank for alerts written by hand.
    key = models.CharField(max_length=120, blank=True)
    message = models.CharField(max_length=300, help_text="One sentence with the numbers behind it")
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        db_table = "patients_alert"  # moved from the patients app, like PainReport
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "key"],
                condition=Q(acknowledged_at__isnull=True) & ~Q(key=""),
                name="unique_open_alert_per_key",
            )
        ]

    def __str__(self) -> str:
        return self.message


class ReferenceMovement(models.Model):
    """A therapist's own performance of an exercise for one patient, kept as landmarks and
    joint-angle templates only (analysis.similarity.ReferenceTemplate), never video. The newest one
    for a patient and exercise is the one in use: it is shown as a demonstration, sets the
    counter's thresholds and scores every repetition."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="reference_movements"
    )
    exercise = models.ForeignKey(Exercise, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=5, choices=Side.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    template = models.JSONField(help_text="analysis.similarity.ReferenceTemplate.to_json()")
    repetitions = models.PositiveSmallIntegerField()
    target_deg = models.FloatField(help_text="The angle the reference reached (median peak)")
    expected_rom_deg = models.FloatField(help_text="The reference's median range of motion")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["patient", "exercise", "created_at"])]

    def __str__(self) -> str:
        return f"Reference {self.exercise} for {self.patient} ({self.created_at:%Y-%m-%d})"


class VideoUpload(models.Model):
    """A recorded video sent for analysis. The file lives only until it is analysed (also when the
    analysis fails); what stays is its result: a session, a reference movement or, for several
    people, their repetitions and synchronisation, and the landmarks for export."""

    class Purpose(models.TextChoices):
        SESSION = "session", "An exercise session"
        REFERENCE = "reference", "The therapist's reference movement"
        GROUP = "group", "Several people (group or pair)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting"
        ANALYSING = "analysing", "Analysing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="uploads")
    prescription = models.ForeignKey(
        Prescription, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    exercise = models.ForeignKey(Exercise, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=5, choices=Side.choices)
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.SESSION)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    frames_done = models.PositiveIntegerField(default=0)
    frames_total = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True, help_text="Why the analysis failed")
    stored_name = models.CharField(
        max_length=80, blank=True, help_text="The file waiting for analysis; blank once deleted"
    )
    session = models.OneToOneField(
        ExerciseSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="upload"
    )
    reference = models.OneToOneField(
        ReferenceMovement, null=True, blank=True, on_delete=models.SET_NULL, related_name="upload"
    )
    landmarks = models.BinaryField(
        null=True, blank=True, help_text="Every tracked person's landmarks (analysis.exports npz)"
    )
    result = models.JSONField(
        default=dict, blank=True, help_text="Per person repetitions and synchronisation (group)"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()}: {self.exercise} ({self.get_status_display()})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
