"""Reads that combine the layers: the therapist's roster."""

import datetime
from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

from django.db.models import Count, Max, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce

from patients.models import Assignment, Patient, Therapist
from patients.selectors import adherence_ratio, expected_sessions
from sessions.models import Alert, ExerciseSession


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
        done_sessions.in_local_days(first_28, today)
        .filter(patient__therapist=therapist)
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
