"""Reads behind the charts, alerts and reports: a patient's progress in a fixed number of
aggregate queries, whatever the length of the history (no N+1)."""

import datetime
from collections import Counter, defaultdict
from typing import Any
from uuid import UUID

from django.db.models import Avg, Count, Max, Min, Q
from django.utils import timezone

from analysis.progress import Progress, RomSeries, SessionRom, Week, Wellbeing, mondays
from patients.models import Assignment, Exercise, PainReport, Patient
from patients.selectors import User, expected_sessions, get_or_404, visible_to
from reports.models import ProgressReport
from sessions.models import GRADED_POOR, ExerciseSession, Repetition

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
    sessions = ExerciseSession.objects.completed().filter(
        patient=patient, started_at__date__gte=first, started_at__date__lte=last
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


def _peaks(row: dict[str, Any], direction: int) -> tuple[float, float, float, float]:
    """(best, mean, low, high) of the peaks: a repetition peaks at its highest angle when the
    exercise moves the angle up, at its lowest when it moves it down. The trusted repetitions'
    when there are any (see _TRUSTED)."""
    prefix = "trusted_" if row["trusted_reps"] else ""
    if direction > 0:
        names = ("max_high", "max_mean", "max_low", "max_high")
    else:
        names = ("min_low", "min_mean", "min_low", "min_high")
    best, mean, low, high = (row[prefix + name] for name in names)
    return best, mean, low, high


def _rom_series(patient: Patient, sessions: Any) -> list[RomSeries]:
    rows = list(_per_session_peaks(Repetition.objects.filter(session__in=sessions)))
    if not rows:
        return []
    exercises = Exercise.objects.in_bulk({row["session__exercise_id"] for row in rows})
    directions = {
        pk: exercise.definition().thresholds.direction for pk, exercise in exercises.items()
    }
    flags = _flag_counts(sessions)
    baselines = _baselines(patient, directions)

    grouped: dict[tuple[Any, str], list[SessionRom]] = defaultdict(list)
    for row in rows:
        exercise_id, side = row["session__exercise_id"], row["side"]
        best, mean, low, high = _peaks(row, directions[exercise_id])
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
            )
        )
    series = [
        _series(exercises[exercise_id], side, directions[exercise_id], points, baselines)
        for (exercise_id, side), points in grouped.items()
    ]
    return sorted(series, key=lambda s: (s.exercise, s.side))


def _series(
    exercise: Exercise,
    side: str,
    direction: int,
    points: list[SessionRom],
    baselines: dict[tuple[Any, str], float],
) -> RomSeries:
    return RomSeries(
        slug=exercise.slug,
        exercise=exercise.name,
        angle_label=exercise.angle_label,
        side=side,
        direction=direction,
        normal_deg=exercise.normal_max_deg if direction > 0 else exercise.normal_min_deg,
        baseline_deg=baselines.get((exercise.pk, side)),
        points=tuple(points),
        flag_labels={fault["code"]: fault["label"] for fault in exercise.form_faults},
    )


def _flag_counts(sessions: Any) -> dict[tuple[Any, str], dict[str, int]]:
    """Form flags per session and side: how many trusted repetitions carried each."""
    counts: dict[tuple[Any, str], Counter[str]] = defaultdict(Counter)
    flagged = Repetition.objects.filter(_TRUSTED, session__in=sessions).exclude(form_flags=[])
    for session_id, side, codes in flagged.values_list("session_id", "side", "form_flags"):
        counts[(session_id, side)].update(codes)
    return {key: dict(counter) for key, counter in counts.items()}


def _baselines(patient: Patient, directions: dict[Any, int]) -> dict[tuple[Any, str], float]:
    """Mean peak of the first completed session ever, per exercise and side: where the patient
    started, even when the period shown begins later."""
    firsts = (
        Repetition.objects.filter(
            session__patient=patient,
            session__status=ExerciseSession.Status.COMPLETED,
            session__exercise_id__in=directions,
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
        baselines[(exercise_id, row["side"])] = round(_peaks(row, directions[exercise_id])[1], 1)
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


def report_get_for_user(*, user: User, report_id: UUID) -> ProgressReport:
    """A report is for the patient's therapist and the patient; the PDF bytes are not loaded."""
    queryset = ProgressReport.objects.defer("pdf").select_related("patient__user")
    return get_or_404(visible_to(queryset, user), report_id)


def reports_of_patient(*, patient: Patient) -> list[ProgressReport]:
    return list(ProgressReport.objects.defer("pdf").filter(patient=patient)[:20])
