"""Patient pages (today's plan, a session, the report afterwards) and the session detail that
therapist and patient share."""

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from analysis.charts import session_figure
from analysis.repetitions import per_side, symmetry_pct
from audit.models import AuditEvent
from audit.services import audit_record
from patients.decorators import PatientRequest, patient_required
from patients.models import Prescription
from sessions import pose_client
from sessions.consumers import notify_session_ended
from sessions.forms import PainReportForm
from sessions.models import ExerciseSession, Repetition
from sessions.selectors import (
    live_plan,
    repetitions_of_session,
    session_get_for_user,
    today_plan,
)
from sessions.services import session_complete, session_report, session_start
from web.figures import page_figures


@patient_required
def today(request: PatientRequest) -> HttpResponse:
    day = timezone.localdate()
    plan = today_plan(patient=request.patient, today=day)
    return render(request, "sessions/today.html", {"plan": plan, "day": day})


@patient_required
@require_POST
def start(request: PatientRequest, prescription_id: UUID) -> HttpResponse:
    try:
        prescription = Prescription.objects.select_related("exercise").get(pk=prescription_id)
        session = session_start(patient=request.patient, prescription=prescription)
    except (Prescription.DoesNotExist, ValidationError):
        # Not on this patient's plan today: the same answer as a prescription that does not exist.
        raise Http404 from None
    return redirect("session_live", session_id=session.pk)


@patient_required
def live(request: PatientRequest, session_id: UUID) -> HttpResponse:
    """The camera page of an open session: the browser streams frames to the LiveSessionConsumer."""
    session = session_get_for_user(user=request.user, session_id=session_id)
    if not session.is_open:
        return redirect("session_detail", session_id=session.pk)
    plan = live_plan(session=session)
    pose_client.warm_up()  # the models load while the patient reads the instructions
    config = {
        "socketPath": f"/ws/sessions/{session.pk}/live/",
        "exercise": session.exercise.name,
        "cameraView": plan.exercise.camera_view.value,
        "sets": plan.sets,
        "reps": plan.reps,
        "targetDeg": plan.target_deg,
        "holdS": plan.hold_s,
        "restS": plan.rest_s,
        "detailUrl": reverse("session_detail", args=[session.pk]),
    }
    context = {"session": session, "config": config, "form": PainReportForm()}
    return render(request, "sessions/live.html", context)


@login_required
def detail(request: HttpRequest, session_id: UUID) -> HttpResponse:
    session = session_get_for_user(user=request.user, session_id=session_id)
    audit_record(action=AuditEvent.Action.SESSION_VIEWED, request=request, obj=session)
    repetitions = list(repetitions_of_session(session=session))
    context = {
        "session": session,
        "repetitions": repetitions,
        "is_own": getattr(request.user, "patient", None) == session.patient,
        "report": getattr(session, "pain_report", None),
        "figures": _session_figures(session, repetitions),
    }
    sides = per_side(repetitions, session.exercise.definition().thresholds.direction)
    if len(sides) > 1 or session.sides_in_turn > 1:
        context |= {"sides": sides, "symmetry": symmetry_pct(sides)}
    return render(request, "sessions/session_detail.html", context)


def _session_figures(session: ExerciseSession, repetitions: list[Repetition]) -> list:
    if not repetitions:
        return []
    labels = session.exercise.definition().form_labels
    figure = session_figure(repetitions, target_deg=session.target_rom_deg, flag_labels=labels)
    return page_figures([("session", figure)])


@patient_required
@require_POST
def complete(request: PatientRequest, session_id: UUID) -> HttpResponse:
    session = session_get_for_user(user=request.user, session_id=session_id)
    session_complete(session=session, self_reported=True)
    notify_session_ended(session.pk)
    return redirect("session_report", session_id=session.pk)


@patient_required
def report(request: PatientRequest, session_id: UUID) -> HttpResponse:
    session = session_get_for_user(user=request.user, session_id=session_id)
    if session.is_open:
        return redirect("session_detail", session_id=session.pk)
    existing = getattr(session, "pain_report", None)
    initial = (
        {
            "pain_nrs": existing.pain_nrs,
            "effort_borg": existing.effort_borg,
            "comment": existing.comment,
        }
        if existing
        else None
    )
    form = PainReportForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        session_report(session=session, **form.cleaned_data)
        messages.success(request, "Thank you. Your therapist will see how it went.")
        return redirect("today")
    return render(request, "sessions/report.html", {"session": session, "form": form})
