"""Celery tasks for reports: thin, by id, idempotent."""

from celery import shared_task

from reports.models import ProgressReport
from reports.services import report_generate


@shared_task
def generate_report(report_id: str) -> None:
    report = ProgressReport.objects.select_related("patient__user", "patient__therapist__user")
    found = report.filter(pk=report_id).first()
    if found is None:
        return  # deleted meanwhile
    report_generate(report=found)
