"""Progress reports (request, status, download) and the CSV and FHIR exports.

Everything here carries patient data: every response is `Cache-Control: no-store`, and files
get ASCII names made by the code (never from user text).
"""

import datetime
import hashlib
from typing import TypeVar
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from audit.models import AuditEvent
from audit.services import audit_record
from patients.decorators import TherapistRequest, therapist_required
from patients.models import Patient
from patients.selectors import patient_get_for_user
from reports.exports import fhir_bundle, repetitions_csv
from reports.forms import PeriodForm, ReportForm
from reports.models import ProgressReport
from reports.selectors import report_get_for_user, reports_of_patient
from reports.services import report_request
from web.ratelimit import rate_limited

R = TypeVar("R", HttpResponse, StreamingHttpResponse)


def _period(request: HttpRequest) -> tuple[datetime.date, datetime.date]:
    """The export period from the query string: the last 30 days unless given."""
    form = PeriodForm.default(request.GET)
    if form.is_bound and not form.is_valid():
        raise BadRequest(" ".join(str(m) for errors in form.errors.values() for m in errors))
    return form.period()


def _attachment(response: R, file_name: str) -> R:
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    response["Cache-Control"] = "no-store"
    return response


@therapist_required
@never_cache
@rate_limited(key="report_new", methods={"POST"})
def report_new(request: TherapistRequest, patient_id: UUID) -> HttpResponse:
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)
    form = ReportForm.default(request.POST)
    if request.method == "POST" and form.is_valid():
        report = report_request(
            patient=patient,
            requested_by=request.user,
            first=form.cleaned_data["first_day"],
            last=form.cleaned_data["last_day"],
            assessment=form.cleaned_data["assessment"],
            plan=form.cleaned_data["plan"],
        )
        return redirect("report_detail", report_id=report.pk)
    context = {"patient": patient, "form": form, "reports": reports_of_patient(patient=patient)}
    return render(request, "reports/report_new.html", context)


@login_required
@never_cache
def report_detail(request: HttpRequest, report_id: UUID) -> HttpResponse:
    report = report_get_for_user(user=request.user, report_id=report_id)
    audit_record(action=AuditEvent.Action.REPORT_VIEWED, request=request, obj=report)
    return render(request, "reports/report_detail.html", {"report": report})


@login_required
@never_cache
def report_status(request: HttpRequest, report_id: UUID) -> JsonResponse:
    """What the report page polls while Celery makes the PDF. Deliberately not audited: it is
    polled every second or so, and the page and the download are (docs/audit.md)."""
    report = report_get_for_user(user=request.user, report_id=report_id)
    return JsonResponse(
        {
            "status": report.status,
            "label": report.get_status_display(),
            "done": report.is_done,
            "download": reverse("report_download", args=[report.pk]) if report.is_ready else None,
            "error": report.error,
        }
    )


@login_required
@never_cache
@rate_limited(key="export")
def report_download(request: HttpRequest, report_id: UUID) -> HttpResponse:
    report = report_get_for_user(user=request.user, report_id=report_id)
    if not report.is_ready:
        return redirect("report_detail", report_id=report.pk)
    pdf = bytes(ProgressReport.objects.values_list("pdf", flat=True).get(pk=report.pk) or b"")
    # The hash of the bytes sent (the same as report.pdf_sha256 unless the stored PDF changed).
    audit_record(
        action=AuditEvent.Action.REPORT_DOWNLOADED,
        request=request,
        obj=report,
        sha256=hashlib.sha256(pdf).hexdigest(),
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    return _attachment(response, report.file_name)


@login_required
@never_cache
@rate_limited(key="export")
def export_csv(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)
    first, last = _period(request)
    # Made whole before it is sent, so that the audit entry holds the hash of the exact bytes
    # and is written even if the download is aborted. Under ASGI Django reads a synchronous
    # streaming iterator into a list before sending anyway: streaming saved no memory.
    data = "".join(repetitions_csv(patient=patient, first=first, last=last)).encode()
    _audit_export(request, AuditEvent.Action.CSV_EXPORTED, patient, data, first, last)
    response = HttpResponse(data, content_type="text/csv")
    return _attachment(response, f"repetitions-{first:%Y%m%d}-{last:%Y%m%d}.csv")


@login_required
@never_cache
@rate_limited(key="export")
def export_fhir(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)
    first, last = _period(request)
    response = JsonResponse(
        fhir_bundle(patient=patient, first=first, last=last),
        content_type="application/fhir+json",
    )
    _audit_export(request, AuditEvent.Action.FHIR_EXPORTED, patient, response.content, first, last)
    return _attachment(response, f"observations-{first:%Y%m%d}-{last:%Y%m%d}.fhir.json")


def _audit_export(
    request: HttpRequest,
    action: AuditEvent.Action,
    patient: Patient,
    data: bytes,
    first: datetime.date,
    last: datetime.date,
) -> None:
    sha256 = hashlib.sha256(data).hexdigest()
    detail = f"period {first.isoformat()} to {last.isoformat()}"
    audit_record(action=action, request=request, obj=patient, sha256=sha256, detail=detail)
