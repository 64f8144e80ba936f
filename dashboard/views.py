"""The pages that combine every layer: where `/` leads, the therapist's roster and patient page,
and the patient's own history (sessions, progress and reports)."""

import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from analysis.charts import progress_figures
from audit.models import AuditEvent
from audit.services import audit_record
from dashboard.selectors import roster_for_therapist
from patients.decorators import (
    PatientRequest,
    TherapistRequest,
    patient_required,
    therapist_required,
)
from patients.models import Patient
from patients.selectors import assignment_lines_prefetch, patient_get_for_user, patient_of
from patients.services import patient_invitation_path
from reports.selectors import reports_of_patient
from sessions.selectors import alert_get_for_user, progress_of_patient, sessions_of_patient
from sessions.services import alert_acknowledge
from web.figures import page_figures


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if patient_of(request.user):
        return redirect("today")
    return redirect("roster")


@therapist_required
def roster(request: TherapistRequest) -> HttpResponse:
    rows = roster_for_therapist(therapist=request.therapist, today=timezone.localdate())
    return render(request, "dashboard/roster.html", {"rows": rows})


@therapist_required
def patient_detail(request: TherapistRequest, patient_id: UUID) -> HttpResponse:
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)
    audit_record(action=AuditEvent.Action.RECORD_VIEWED, request=request, obj=patient)
    today = timezone.localdate()
    assignments = patient.assignments.select_related("protocol").prefetch_related(
        assignment_lines_prefetch()
    )
    context: dict[str, Any] = {
        "patient": patient,
        "today": today,
        "assignments": assignments,
        "sessions": Paginator(sessions_of_patient(patient=patient), 25).get_page(
            request.GET.get("page")
        ),
        "alerts": patient.alerts.open(),
        **_progress_context(request, patient, today),
        "reports": reports_of_patient(patient=patient),
        "invitation_link": (
            None
            if patient.has_set_password
            else request.build_absolute_uri(patient_invitation_path(patient=patient))
        ),
    }
    return render(request, "dashboard/patient_detail.html", context)


PERIOD_CHOICES = (30, 90, 180, 365)


def _progress_context(request: HttpRequest, patient: Patient, today: datetime.date) -> dict:
    """The progress charts over the last ?days= days (90 unless one of PERIOD_CHOICES)."""
    asked = request.GET.get("days", "")
    days = int(asked) if asked in {str(days) for days in PERIOD_CHOICES} else 90
    progress = progress_of_patient(
        patient=patient, first=today - datetime.timedelta(days=days - 1), last=today
    )
    return {
        "progress": progress,
        "figures": page_figures(progress_figures(progress)),
        "period_days": days,
        "period_choices": PERIOD_CHOICES,
    }


@therapist_required
@require_POST
def alert_ack(request: TherapistRequest, alert_id: UUID) -> HttpResponse:
    alert = alert_get_for_user(user=request.user, alert_id=alert_id)
    was_open = alert.acknowledged_at is None
    alert = alert_acknowledge(alert=alert, user=request.user)
    # Acknowledging again changes nothing (the first time and person stay): no entry.
    if was_open:
        audit_record(action=AuditEvent.Action.ALERT_ACKNOWLEDGED, request=request, obj=alert)
    return redirect("patient_detail", patient_id=alert.patient_id)


HISTORY_CHART_DAYS = 90


@patient_required
def history(request: PatientRequest) -> HttpResponse:
    """The patient's own sessions, with simpler charts than the therapist's and their reports."""
    patient, today = request.patient, timezone.localdate()
    audit_record(
        action=AuditEvent.Action.RECORD_VIEWED, request=request, obj=patient, detail="own history"
    )
    progress = progress_of_patient(
        patient=patient,
        first=today - datetime.timedelta(days=HISTORY_CHART_DAYS - 1),
        last=today,
    )
    context = {
        "sessions": sessions_of_patient(patient=patient),
        "progress": progress,
        "figures": page_figures(progress_figures(progress, simple=True)) if progress.rom else [],
        "reports": [r for r in reports_of_patient(patient=patient) if r.is_ready],
    }
    return render(request, "dashboard/history.html", context)
