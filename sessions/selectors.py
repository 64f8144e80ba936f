"""Reads for sessions and the patient's plan, scoped by the user (404 for anything not theirs)."""

import datetime
import statistics
from collections import Counter
from dataclasses import dataclass, fields
from uuid import UUID

from django.db.models import QuerySet
from django.utils import timezone

from analysis.repetitions import RepetitionMetrics
from analysis.tracker import Plan
from patients.models import Assignment, Patient, Prescription
from patients.selectors import (
    User,
    assignment_lines_prefetch,
    get_or_404,
    patient_of,
    visible_to,
)
from sessions.models import ExerciseSession, Repetition


def session_get_for_user(*, user: User, session_id: UUID) -> ExerciseSession:
    queryset = ExerciseSession.objects.select_related("exercise", "patient__user", "prescription")
    return get_or_404(visible_to(queryset, user), session_id)


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
        ExerciseSession.objects.filter(
            patient=patient, started_at__date__gte=monday, started_at__date__lte=today
        ).only(
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
        expected_rom_deg=recent_rom_deg(session=session),
    )


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
    return [
        RepetitionMetrics(
            **{field.name: getattr(rep, field.name) for field in fields(RepetitionMetrics)}
        )
        for rep in repetitions_of_session(session=session)
    ]
