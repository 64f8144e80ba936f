"""Reads for sessions, the patient's plan, alerts and progress, scoped by the user (404 for
anything not theirs)."""

import datetime
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID

from django.db.models import Avg, Count, Max, Min, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from analysis.exercises import ExerciseDefinition, RepThresholds
from analysis.progress import Progress, RomSeries, SessionRom, Week, Wellbeing, mondays
from analysis.repetitions import RepetitionMetrics
from analysis.tracker import Plan
from patients.models import Assignment, Exercise, Patient, Prescription
from patients.selectors import (
    User,
    assignment_lines_prefetch,
    expected_sessions,
    get_or_404,
    patient_of,
    therapist_of,
    visible_to,
)
from sessions.models import GRADED_POOR, Alert, ExerciseSession, PainReport, Repetition
from sessions.references import reference_in_use, target_deg


def session_get_for_user(*, user: User, session_id: UUID) -> ExerciseSession:
    queryset = ExerciseSession.objects.select_related("exercise", "patient__user", "prescription")
    return get_or_404(visible_to(queryset, user), session_id)


def alert_get_for_user(*, user: User, alert_id: UUID) -> Alert:
    therapist = therapist_of(user)
    if therapist is None:
        raise Http404
    return get_or_404(Alert.objects.filter(patient__therapist=therapist), alert_id)


def sessions_of_patient(*, patient: Patient) -> QuerySet[ExerciseSession]:
    return (
        ExerciseSession.objects.filter(patient=patient)
        .select_related("exercise", "pain_report")
        .order_by("-started_at")
    )


def repetitions_of_session(*, session: ExerciseSession) -> QuerySet[Repetition]:
    return session.repetitions.order_by("set_number", "index")


@dataclass(frozen=True)
class PlanItem:
    prescription: Prescription
    done_this_week: int
    done_today: bool
    open_session: ExerciseSession | None
    target_deg: float  # the prescription's, or the reference movement's (references.target_deg)

    @property
    def week_complete(self) -> bool:
        return self.done_this_week >= self.prescription.sessions_per_week


def today_plan(*, patient: Patient, today: datetime.date) -> list[PlanItem]:
    """The exercise lines of the patient's protocols active today, with this week's progress
    (weeks start on Monday)."""
    monday = today - datetime.timedelta(days=today.weekday())
    assignments = (
        Assignment.objects.active_on(today)
        .filter(patient=patient)
        .select_related("protocol")
        .prefetch_related(assignment_lines_prefetch())
    )
    week = list(
        ExerciseSession.objects.in_local_days(monday, today)
        .filter(patient=patient)
        .only(
            "prescription_id",
            "status",
            "started_at",
            "reps_counted",
            "target_sets",
            "target_reps",
            "sides_in_turn",
        )
    )
    done = [s for s in week if s.counts_towards_plan]
    per_line = Counter(s.prescription_id for s in done)
    today_lines = {s.prescription_id for s in done if timezone.localdate(s.started_at) == today}
    open_sessions = {
        s.prescription_id: s
        for s in week
        if s.status == ExerciseSession.Status.IN_PROGRESS
        and timezone.localdate(s.started_at) == today
    }
    return [
        PlanItem(
            prescription=line,
            done_this_week=per_line[line.pk],
            done_today=line.pk in today_lines,
            open_session=open_sessions.get(line.pk),
            target_deg=target_deg(patient.pk, line.exercise, line),
        )
        for assignment in assignments
        for line in assignment.protocol.prescriptions.all()
    ]


# --- Live sessions -------------------------------------------------------------------------------
def live_session_for_user(*, user: User, session_id: str) -> ExerciseSession | None:
    """The session a live connection may serve: the user's own, still in progress."""
    patient = patient_of(user)
    if patient is None:
        return None
    return (
        ExerciseSession.objects.select_related("exercise", "prescription")
        .filter(pk=session_id, patient=patient, status=ExerciseSession.Status.IN_PROGRESS)
        .first()
    )


RECENT_SESSIONS = 3  # completed sessions whose range of motion sets the counter's first guess


def live_plan(*, session: ExerciseSession) -> Plan:
    """What the live tracker counts against: the targets copied into the session, the
    prescription's hold and rest, and the patient's own recent range of motion (what a first
    repetition is expected to cover, before this session's own range is known)."""
    prescription = session.prescription
    return Plan(
        exercise=session.exercise.definition(),
        side=session.side,
        sets=session.target_sets,
        reps=session.target_reps,
        target_deg=session.target_rom_deg,
        hold_s=float(prescription.hold_s) if prescription else 0.0,
        rest_s=float(prescription.rest_s) if prescription else 60.0,
        expected_rom_deg=recent_rom_deg(session=session) or _reference_rom_deg(session),
    )


def _reference_rom_deg(session: ExerciseSession) -> float | None:
    """The range the therapist's reference movement covered: the counter's first guess for a
    patient who has no session of their own yet."""
    reference = reference_in_use(patient_id=session.patient_id, exercise_id=session.exercise_id)
    return reference.expected_rom_deg if reference else None


def recent_rom_deg(*, session: ExerciseSession) -> float | None:
    """The median of the mean range of motion of the patient's last few completed sessions of
    the same exercise and side, or None before the first."""
    means = [
        mean
        for mean in ExerciseSession.objects.filter(
            patient_id=session.patient_id,
            exercise_id=session.exercise_id,
            side=session.side,
            status=ExerciseSession.Status.COMPLETED,
            mean_rom_deg__isnull=False,
        )
        .exclude(pk=session.pk)
        .order_by("-started_at")
        .values_list("mean_rom_deg", flat=True)[:RECENT_SESSIONS]
        if mean is not None
    ]
    return statistics.median(means) if means else None


def live_resume_point(*, session: ExerciseSession) -> tuple[int, int]:
    """(set number, repetitions already done in it) where a reconnected session continues: after
    the last recorded repetition, in the next set when that one was full. A set number beyond the
    plan means that every set is done."""
    last = session.repetitions.order_by("-set_number", "-index").first()
    if last is None:
        return 1, 0
    if last.index >= session.reps_per_set:
        return last.set_number + 1, 0
    return last.set_number, last.index


def repetition_metrics_of_session(*, session: ExerciseSession) -> list[RepetitionMetrics]:
    """The stored repetitions as records (without what is not stored: the joint traces)."""
    stored = [field.name for field in fields(RepetitionMetrics) if hasattr(Repetition, field.name)]
    return [
        RepetitionMetrics(**{name: getattr(rep, name) for name in stored})
        for rep in repetitions_of_session(session=session)
    ]


# --- Progress: the reads behind the charts, alerts and reports -----------------------------------
# A patient's progress in a fixed number of aggregate queries, whatever the length of the history
# (no N+1).

# A session's peaks leave out its repetitions graded poor, unless all of them were (the session
# is then drawn hollow and raises no alert).
_TRUSTED = ~GRADED_POOR
_PEAKS = {
    "reps": (Count, "pk"),
    "max_high": (Max, "max_deg"),
    "max_mean": (Avg, "max_deg"),
    "max_low": (Min, "max_deg"),
    "min_low": (Min, "min_deg"),
    "min_mean": (Avg, "min_deg"),
    "min_high": (Max, "min_deg"),
    "mean_similarity": (Avg, "similarity"),
}
_PEAK_AGGREGATES = {
    **{name: function(column) for name, (function, column) in _PEAKS.items()},
    **{
        f"trusted_{name}": function(column, filter=_TRUSTED)
        for name, (function, column) in _PEAKS.items()
    },
}


def progress_of_patient(*, patient: Patient, first: datetime.date, last: datetime.date) -> Progress:
    """The patient's completed sessions with their local start date in [first, last]."""
    sessions = (
        ExerciseSession.objects.completed().in_local_days(first, last).filter(patient=patient)
    )
    return Progress(
        first=first,
        last=last,
        rom=tuple(_rom_series(patient, sessions)),
        weeks=tuple(_weeks(patient, sessions, first, last)),
        wellbeing=tuple(_wellbeing(sessions)),
    )


def _per_session_peaks(reps: Any) -> Any:
    """Repetition peaks aggregated per session and side, oldest first."""
    return (
        reps.values(
            "session_id",
            "side",
            "session__started_at",
            "session__exercise_id",
            "session__target_rom_deg",
        )
        .annotate(**_PEAK_AGGREGATES)
        .order_by("session__started_at", "side")
    )


def _peaks(row: dict[str, Any], thresholds: RepThresholds) -> tuple[float, float, float, float]:
    """(best, mean, low, high) of the peaks: a repetition peaks at its highest angle when the
    exercise moves the angle up, at its lowest when it moves it down (RepThresholds.peak_end),
    and the best peak is the one furthest towards the target. The trusted repetitions' when
    there are any (see _TRUSTED)."""
    prefix = "trusted_" if row["trusted_reps"] else ""
    peaks = prefix + thresholds.peak_end("min", "max")  # the column the peaks are aggregated from
    low, mean, high = row[f"{peaks}_low"], row[f"{peaks}_mean"], row[f"{peaks}_high"]
    return thresholds.furthest((low, high)), mean, low, high


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _rom_series(patient: Patient, sessions: Any) -> list[RomSeries]:
    rows = list(_per_session_peaks(Repetition.objects.filter(session__in=sessions)))
    if not rows:
        return []
    exercises = Exercise.objects.in_bulk({row["session__exercise_id"] for row in rows})
    definitions = {pk: exercise.definition() for pk, exercise in exercises.items()}
    flags = _flag_counts(sessions)
    baselines = _baselines(patient, definitions)

    grouped: dict[tuple[Any, str], list[SessionRom]] = defaultdict(list)
    for row in rows:
        exercise_id, side = row["session__exercise_id"], row["side"]
        best, mean, low, high = _peaks(row, definitions[exercise_id].thresholds)
        grouped[(exercise_id, side)].append(
            SessionRom(
                session_id=str(row["session_id"]),
                started_at=timezone.localtime(row["session__started_at"]),
                best_deg=round(best, 1),
                mean_deg=round(mean, 1),
                low_deg=round(low, 1),
                high_deg=round(high, 1),
                reps=row["trusted_reps"] or row["reps"],
                target_deg=row["session__target_rom_deg"],
                flags=flags.get((row["session_id"], side), {}),
                poor_reps=row["reps"] - row["trusted_reps"],
                poor=not row["trusted_reps"],
                similarity=_rounded(row["trusted_mean_similarity"] or row["mean_similarity"]),
            )
        )
    series = [
        _series(exercises[exercise_id], side, definitions[exercise_id], points, baselines)
        for (exercise_id, side), points in grouped.items()
    ]
    return sorted(series, key=lambda s: (s.exercise, s.side))


def _series(
    exercise: Exercise,
    side: str,
    definition: ExerciseDefinition,
    points: list[SessionRom],
    baselines: dict[tuple[Any, str], float],
) -> RomSeries:
    return RomSeries(
        slug=exercise.slug,
        exercise=exercise.name,
        angle_label=exercise.angle_label,
        side=side,
        direction=definition.thresholds.direction,
        normal_deg=definition.normal_end_deg,
        baseline_deg=baselines.get((exercise.pk, side)),
        points=tuple(points),
        flag_labels=definition.form_labels,
    )


def _flag_counts(sessions: Any) -> dict[tuple[Any, str], dict[str, int]]:
    """Form flags per session and side: how many trusted repetitions carried each."""
    counts: dict[tuple[Any, str], Counter[str]] = defaultdict(Counter)
    flagged = Repetition.objects.filter(_TRUSTED, session__in=sessions).exclude(form_flags=[])
    for session_id, side, codes in flagged.values_list("session_id", "side", "form_flags"):
        counts[(session_id, side)].update(codes)
    return {key: dict(counter) for key, counter in counts.items()}


def _baselines(
    patient: Patient, definitions: dict[Any, ExerciseDefinition]
) -> dict[tuple[Any, str], float]:
    """Mean peak of the first completed session ever, per exercise and side: where the patient
    started, even when the period shown begins later."""
    firsts = (
        Repetition.objects.filter(
            session__patient=patient,
            session__status=ExerciseSession.Status.COMPLETED,
            session__exercise_id__in=definitions,
        )
        .values("session__exercise_id", "side")
        .annotate(first=Min("session__started_at"))
    )
    match = Q(pk__in=[])
    for row in firsts:
        match |= Q(
            session__exercise_id=row["session__exercise_id"],
            side=row["side"],
            session__started_at=row["first"],
            session__patient=patient,
        )
    baselines = {}
    for row in _per_session_peaks(Repetition.objects.filter(match)):
        exercise_id = row["session__exercise_id"]
        mean = _peaks(row, definitions[exercise_id].thresholds)[1]
        baselines[(exercise_id, row["side"])] = round(mean, 1)
    return baselines


def _weeks(
    patient: Patient, sessions: Any, first: datetime.date, last: datetime.date
) -> list[Week]:
    done: Counter[datetime.date] = Counter()
    for started_at in sessions.work_done().values_list("started_at", flat=True):
        day = timezone.localdate(started_at)
        done[day - datetime.timedelta(days=day.weekday())] += 1
    assignments = (
        Assignment.objects.overlapping(first, last)
        .filter(patient=patient)
        .prefetch_related("protocol__prescriptions")
    )
    lines = [(a, line) for a in assignments for line in a.protocol.prescriptions.all()]
    weeks = []
    for monday in mondays(first, last):
        week_first = max(first, monday)
        week_last = min(last, monday + datetime.timedelta(days=6))
        expected = sum(
            expected_sessions(
                prescription=line, assignment=assignment, first=week_first, last=week_last
            )
            for assignment, line in lines
        )
        weeks.append(Week(monday=monday, expected=round(expected, 2), done=done[monday]))
    # Weeks before anything was prescribed or done are not part of the story.
    while weeks and not (weeks[0].expected or weeks[0].done):
        weeks.pop(0)
    return weeks


def _wellbeing(sessions: Any) -> list[Wellbeing]:
    reports = (
        PainReport.objects.filter(session__in=sessions)
        .order_by("session__started_at")
        .values_list("session_id", "session__started_at", "pain_nrs", "effort_borg")
    )
    return [
        Wellbeing(
            session_id=str(session_id),
            started_at=timezone.localtime(started),
            pain_nrs=pain,
            effort_borg=effort,
        )
        for session_id, started, pain, effort in reports
    ]
