"""Patient pages (today's plan, a session, the report afterwards), the session detail that
therapist and patient share, and uploaded recordings (the forms, the progress page and its
status)."""

import functools
import hashlib
from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from analysis.charts import rep_similarity_figure, session_figure
from analysis.exports import export_bytes, tracks_from_npz
from analysis.repetitions import per_side, symmetry_pct
from audit.models import AuditEvent
from audit.services import audit_record
from patients.decorators import (
    PatientRequest,
    TherapistRequest,
    patient_required,
    therapist_required,
)
from patients.models import Patient, Prescription
from patients.selectors import patient_get_for_user
from sessions import pose_client
from sessions.consumers import notify_session_ended
from sessions.forms import PainReportForm, PatientUploadForm, RecordingForm, TherapistUploadForm
from sessions.groups import group_compare, reference_choices
from sessions.models import ExerciseSession, Repetition, VideoUpload
from sessions.references import demonstration_of, reference_in_use
from sessions.selectors import (
    live_plan,
    repetitions_of_session,
    session_get_for_user,
    today_plan,
)
from sessions.services import session_complete, session_report, session_start
from sessions.uploads import (
    VideoUploadHandler,
    upload_create,
    upload_get_for_user,
    upload_landmarks,
)
from web.figures import page_figures
from web.ratelimit import rate_limited


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
    reference = reference_in_use(patient_id=session.patient_id, exercise_id=session.exercise_id)
    context = {
        "session": session,
        "config": config,
        "form": PainReportForm(),
        "demonstration": demonstration_of(reference),
    }
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
        "scored": any(rep.similarity is not None for rep in repetitions),
    }
    sides = per_side(repetitions, session.exercise.definition().thresholds.direction)
    if len(sides) > 1 or session.sides_in_turn > 1:
        context |= {"sides": sides, "symmetry": symmetry_pct(sides)}
    return render(request, "sessions/session_detail.html", context)


def _session_figures(session: ExerciseSession, repetitions: list[Repetition]) -> list:
    if not repetitions:
        return []
    labels = session.exercise.definition().form_labels
    figures = [
        (
            "session",
            session_figure(repetitions, target_deg=session.target_rom_deg, flag_labels=labels),
        )
    ]
    similarity = rep_similarity_figure(repetitions, [rep.similarity for rep in repetitions])
    if similarity is not None:
        figures.append(("similarity", similarity))
    return page_figures(figures)


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


# --- Uploaded recordings -------------------------------------------------------------------------
def receiving_video(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Streams the request's video to the upload folder (VideoUploadHandler) and deletes it
    again when the request ends, unless an upload took it over. The handler must be in place
    before anything reads the body, and the CSRF check reads it: the views are csrf_exempt for
    the middleware and checked here, after the handler is set (Django's documented pattern)."""
    protected = csrf_protect(view)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        handler = VideoUploadHandler(request)
        request.upload_handlers = [handler]
        try:
            return protected(request, *args, handler=handler, **kwargs)
        finally:
            handler.discard_unless_kept()

    return wrapper


@csrf_exempt  # checked by receiving_video
@patient_required
@rate_limited(key="upload", methods={"POST"})
def upload_new(request: PatientRequest) -> HttpResponse:
    """A patient uploads a recording of one of today's exercises."""
    form_kwargs = {"patient": request.patient, "today": timezone.localdate()}
    return _upload_form(request, PatientUploadForm, form_kwargs, patient=request.patient)


@csrf_exempt  # checked by receiving_video
@therapist_required
@rate_limited(key="upload", methods={"POST"})
def upload_for_patient(request: TherapistRequest, patient_id: UUID) -> HttpResponse:
    """A therapist uploads a clinic recording for one of their patients."""
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)  # before any byte
    form_kwargs = {"patient": patient, "therapist": request.therapist}
    return _upload_form(request, TherapistUploadForm, form_kwargs, patient=patient)


@receiving_video
def _upload_form(
    request: HttpRequest,
    form_class: type[RecordingForm],
    form_kwargs: dict[str, Any],
    *,
    patient: Patient,
    handler: VideoUploadHandler,
) -> HttpResponse:
    if request.method != "POST":
        form = form_class(**form_kwargs)
    else:
        form = form_class(request.POST, request.FILES, refusal=handler.refusal, **form_kwargs)
        if form.is_valid() and form.probe is not None:
            chosen = form.chosen()
            upload = upload_create(
                patient=patient,
                exercise=chosen.exercise,
                side=chosen.side,
                prescription=chosen.prescription,
                purpose=chosen.purpose,
                uploaded_by=request.user,
                video=form.cleaned_data["video"],
                probe=form.probe,
            )
            return redirect("upload_detail", upload_id=upload.pk)
    context = {"form": form, "patient": patient, "is_own": patient.user_id == request.user.pk}
    return render(request, "sessions/upload_form.html", context)


@login_required
def upload_detail(request: HttpRequest, upload_id: UUID) -> HttpResponse:
    """The upload's progress, then what it became (a session, a reference movement, or several
    people's repetitions and how well they move in step), or why it failed."""
    upload = upload_get_for_user(user=request.user, upload_id=upload_id)
    is_own = upload.patient.user_id == request.user.pk
    context: dict[str, Any] = {"upload": upload, "is_own": is_own}
    if upload.status == VideoUpload.Status.DONE:
        context["export_formats"] = EXPORT_FORMATS
        context["demonstration"] = demonstration_of(upload.reference)
        if upload.purpose == VideoUpload.Purpose.GROUP:
            context |= _group_context(request, upload)
    return render(request, "sessions/upload_detail.html", context)


# The landmark exports a done upload offers: (format, what it is for).
EXPORT_FORMATS = (
    ("coco", "COCO keypoints (JSON)"),
    ("openpose", "OpenPose BODY_25 (JSON)"),
    ("trc", "OpenSim markers (.trc)"),
    ("mot", "OpenSim joint angles (.mot)"),
)


def _group_context(request: HttpRequest, upload: VideoUpload) -> dict[str, Any]:
    """Everyone against the reference the therapist chose (?reference=...), else the default."""
    choices = reference_choices(upload)
    asked = request.GET.get("reference", "")
    chosen = asked if asked in dict(choices) else upload.result.get("reference", "")
    upload.landmarks = upload_landmarks(upload=upload)
    in_step = group_compare(upload, chosen)
    return {
        "people": upload.result.get("people", []),
        "reference_choices": choices,
        "reference_chosen": chosen,
        "in_step": in_step,
        "figures": page_figures(
            [(f"in-step-{row.track_id}", row.figure) for row in in_step if row.figure]
        ),
    }


@login_required
@never_cache
def upload_export(request: HttpRequest, upload_id: UUID, fmt: str) -> HttpResponse:
    """The landmarks of an analysed upload in a standard format (analysis.exports), audited with
    the SHA-256 of the bytes sent, like the other exports."""
    upload = upload_get_for_user(user=request.user, upload_id=upload_id)
    landmarks = upload_landmarks(upload=upload)
    if fmt not in dict(EXPORT_FORMATS) or landmarks is None:
        raise Http404("No such export.")
    stored = tracks_from_npz(landmarks)
    name = f"{upload.exercise.slug}-{upload.created_at:%Y%m%d-%H%M}"
    content, content_type, file_name = export_bytes(
        stored.tracks, fmt, image_size=stored.image_size, fps=stored.fps, name=name
    )
    audit_record(
        action=AuditEvent.Action.LANDMARKS_EXPORTED,
        request=request,
        obj=upload.patient,
        sha256=hashlib.sha256(content).hexdigest(),
        detail=f"{fmt}, recording of {upload.created_at:%Y-%m-%d %H:%M}",
    )
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


@login_required
@never_cache
def upload_status(request: HttpRequest, upload_id: UUID) -> JsonResponse:
    """What the progress page polls (static/js/upload.js). Not audited, like report_status: it is
    polled every second; the session it leads to is audited when viewed."""
    upload = upload_get_for_user(user=request.user, upload_id=upload_id)
    return JsonResponse(_status_json(upload))


def _status_json(upload: VideoUpload) -> dict[str, Any]:
    done, total = upload.frames_done, upload.frames_total
    return {
        "status": upload.status,
        "label": upload.get_status_display(),
        "finished": upload.is_finished,
        "frames_done": done,
        "frames_total": total,
        "percent": min(100, round(100 * done / total)) if total else None,
        "error": upload.error,
        "session_url": reverse("session_detail", args=[upload.session_id])
        if upload.session_id
        else None,
    }
