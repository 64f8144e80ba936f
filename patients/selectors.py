"""Reads. Object-level access lives here: every `*_get_for_user` scopes its query by the user, and
an object the user may not see raises Http404, the same as one that does not exist."""

import datetime
from collections import defaultdict
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import Count, Max, Model, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from patients.models import (
    Alert,
    Assignment,
    Exercise,
    Patient,
    Prescription,
    Protocol,
    Therapist,
)

User = AbstractBaseUser | AnonymousUser
M = TypeVar("M", bound=Model)


def therapist_of(user: User) -> Therapist | None:
    return getattr(user, "therapist", None) if user.is_authenticated else None


def patient_of(user: User) -> Patient | None:
    return getattr(user, "patient", None) if user.is_authenticated else None


def get_or_404(queryset: QuerySet[M], pk: UUID | str) -> M:
    try:
        return queryset.get(pk=pk)
    except (ObjectDoesNotExist, ValueError, ValidationError):
        raise Http404 from None


def visible_to(queryset: QuerySet[M], user: User) -> QuerySet[M]:
    """Rows of a model with a `patient`: those of the therapist's patients, or the patient's own;
    anyone else gets Http404."""
    if therapist := therapist_of(user):
        return queryset.filter(patient__therapist=therapist)
    if patient := patient_of(user):
        return queryset.filter(patient=patient)
    raise Http404


def patient_get_for_user(*, user: User, patient_id: UUID) -> Patient:
    if therapist := therapist_of(user):
        return get_or_404(
            Patient.objects.of_therapist(therapist).select_related("user"), patient_id
        )
    if (patient := patient_of(user)) and patient.pk == patient_id:
        return patient
    raise Http404


def protocol_get_for_user(*, user: User, protocol_id: UUID) -> Protocol:
    """Protocols belong to the therapist who wrote them; patients see theirs through their plan."""
    therapist = therapist_of(user)
    if therapist is None:
        raise Http404
    return get_or_404(Protocol.objects.filter(therapist=therapist), protocol_id)


def assignment_get_for_user(*, user: User, assignment_id: UUID) -> Assignment:
    therapist = therapist_of(user)
    if therapist is None:
        raise Http404
    queryset = Assignment.objects.filter(patient__therapist=therapist).select_related(
        "patient__user", "protocol"
    )
    return get_or_404(queryset, assignment_id)


def exercise_get_for_user(
    *, user: User, exercise_id: UUID | str, editable: bool = False
) -> Exercise:
    """The built-in library is readable by every therapist; custom exercises only by their owner,
    and only custom exercises can be edited."""
    therapist = therapist_of(user)
    if therapist is None:
        raise Http404
    queryset = (
        Exercise.objects.filter(owner=therapist)
        if editable
        else Exercise.objects.visible_to(therapist)
    )
    return get_or_404(queryset, exercise_id)


def alert_get_for_user(*, user: User, alert_id: UUID) -> Alert:
    therapist = therapist_of(user)
    if therapist is None:
        raise Http404
    return get_or_404(Alert.objects.filter(patient__therapist=therapist), alert_id)


def protocol_list_for_therapist(*, therapist: Therapist) -> list[Protocol]:
    return list(
        Protocol.objects.filter(therapist=therapist)
        .annotate(line_count=Count("prescriptions", distinct=True))
        .annotate(patient_count=Count("assignments__patient", distinct=True))
    )


def assignment_lines_prefetch() -> Prefetch:
    """Prefetch for assignments: their protocol's exercise lines, in order, with the exercise."""
    return Prefetch(
        "protocol__prescriptions",
        queryset=Prescription.objects.select_related("exercise").order_by("position"),
    )


# --- Adherence -----------------------------------------------------------------------------------


def expected_sessions(
    *, prescription: Prescription, assignment: Assignment, first: datetime.date, last: datetime.date
) -> float:
    """Sessions a prescription asks for in [first, last], pro rata over the days its assignment
    covers."""
    start, end = max(first, assignment.start_date), min(last, assignment.end_date)
    days = (end - start).days + 1
    return prescription.sessions_per_week * days / 7 if days > 0 else 0.0


def adherence_ratio(expected_and_done: list[tuple[float, int]]) -> float | None:
    """Share of prescribed sessions done, each prescription capped at what it asked for, so that
    over-doing one exercise does not hide skipping another. None when nothing was prescribed."""
    expected = sum(want for want, _ in expected_and_done)
    if expected == 0:
        return None
    return sum(min(done, want) for want, done in expected_and_done) / expected


# --- Roster --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterRow:
    patient: Patient
    protocols: list[str]
    adherence_7d: float | None
    adherence_28d: float | None
    last_session_at: datetime.datetime | None
    open_alerts: int


def roster_for_therapist(*, therapist: Therapist, today: datetime.date) -> list[RosterRow]:
    """The therapist's patients with adherence and alerts, in a fixed number of queries."""
    from sessions.models import ExerciseSession

    first_28, first_7 = today - datetime.timedelta(days=27), today - datetime.timedelta(days=6)
    done_sessions = ExerciseSession.objects.work_done()
    open_alerts = (
        Alert.objects.open()
        .filter(patient=OuterRef("pk"))
        .order_by()
        .values("patient")
        .annotate(n=Count("pk"))
        .values("n")
    )
    patients = list(
        Patient.objects.of_therapist(therapist)
        .select_related("user")
        # Meta.ordering is dropped from aggregating queries: order explicitly.
        .order_by("user__last_name", "user__first_name")
        .annotate(
            last_session_at=Max("sessions__started_at", filter=Q(sessions__status="completed")),
            open_alert_count=Coalesce(Subquery(open_alerts), 0),
        )
        .prefetch_related(
            Prefetch(
                "assignments",
                queryset=Assignment.objects.overlapping(first_28, today)
                .select_related("protocol")
                .prefetch_related("protocol__prescriptions"),
                to_attr="recent_assignments",
            )
        )
    )
    done: dict[tuple[UUID, UUID, str], int] = defaultdict(int)
    for row in (
        done_sessions.filter(patient__therapist=therapist, started_at__date__gte=first_28)
        .values("patient_id", "prescription_id", "started_at__date")
        .annotate(n=Count("pk"))
    ):
        window = "7" if row["started_at__date"] >= first_7 else "28"
        done[(row["patient_id"], row["prescription_id"], window)] += row["n"]

    rows = []
    for patient in patients:
        per_window: dict[str, list[tuple[float, int]]] = {"7": [], "28": []}
        for assignment in patient.recent_assignments:  # type: ignore[attr-defined]
            for line in assignment.protocol.prescriptions.all():
                in_7 = done[(patient.pk, line.pk, "7")]
                in_28 = in_7 + done[(patient.pk, line.pk, "28")]
                per_window["7"].append(
                    (
                        expected_sessions(
                            prescription=line, assignment=assignment, first=first_7, last=today
                        ),
                        in_7,
                    )
                )
                per_window["28"].append(
                    (
                        expected_sessions(
                            prescription=line, assignment=assignment, first=first_28, last=today
                        ),
                        in_28,
                    )
                )
        rows.append(
            RosterRow(
                patient=patient,
                protocols=[
                    a.protocol.name
                    for a in patient.recent_assignments  # type: ignore[attr-defined]
                    if a.is_active_on(today)
                ],
                adherence_7d=adherence_ratio(per_window["7"]),
                adherence_28d=adherence_ratio(per_window["28"]),
                last_session_at=patient.last_session_at,  # type: ignore[attr-defined]
                open_alerts=patient.open_alert_count,  # type: ignore[attr-defined]
            )
        )
    return rows
