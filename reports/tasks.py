"""Celery tasks for reports: thin, by id, idempotent."""

import time

from celery import shared_task

from reports.models import ProgressReport
from reports.services import report_generate
from web import metrics


@shared_task
def generate_report(report_id: str) -> None:
    report = ProgressReport.objects.select_related("patient__user", "patient__therapist__user")
    found = report.filter(pk=report_id).first()
    if found is None:
        return  # deleted meanwhile
    started = time.perf_counter()
    done = report_generate(report=found)
    metrics.report_made(done.status, time.perf_counter() - started)
