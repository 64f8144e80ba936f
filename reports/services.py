"""Writes for progress reports: the request, and the PDF made by the Celery task."""

import datetime
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from patients.models import Patient
from reports.models import ProgressReport
from reports.pdf import render_report

logger = logging.getLogger(__name__)


def report_request(
    *,
    patient: Patient,
    requested_by: Any,
    first: datetime.date,
    last: datetime.date,
    assessment: str = "",
    plan: str = "",
) -> ProgressReport:
    """Record the request; Celery makes the PDF once the request is committed."""
    from reports.tasks import generate_report

    report = ProgressReport(
        patient=patient,
        requested_by=requested_by,
        first_day=first,
        last_day=last,
        assessment=assessment,
        plan=plan,
    )
    report.full_clean()
    with transaction.atomic():
        report.save()
        generate_report.delay_on_commit(str(report.pk))
    return report


def report_generate(*, report: ProgressReport) -> ProgressReport:
    """Make the PDF. Taking the report from waiting (or from a run that a killed worker left
    behind) to running is one conditional update, so a duplicated task does nothing."""
    claimed = ProgressReport.objects.filter(
        pk=report.pk, status__in=[ProgressReport.Status.PENDING, ProgressReport.Status.RUNNING]
    ).update(status=ProgressReport.Status.RUNNING)
    if not claimed:
        return report
    try:
        rendered = render_report(
            patient=report.patient,
            first=report.first_day,
            last=report.last_day,
            assessment=report.assessment,
            plan=report.plan,
        )
    except Exception as error:
        logger.exception("progress report %s failed", report.pk)
        report.status, report.error = ProgressReport.Status.FAILED, str(error)[:300]
    else:
        report.status = ProgressReport.Status.READY
        report.pdf, report.pdf_sha256, report.pages = rendered.pdf, rendered.sha256, rendered.pages
    report.finished_at = timezone.now()
    report.save(update_fields=["status", "error", "pdf", "pdf_sha256", "pages", "finished_at"])
    return report
