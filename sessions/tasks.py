"""Celery tasks of sessions, alerts and uploaded recordings: thin, by id, idempotent (for alerts,
the unique open alert per key decides; an upload is claimed once)."""

import datetime
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from analysis.repetitions import RepetitionMetrics
from patients.models import Assignment, Patient
from sessions.models import ExerciseSession
from sessions.services import alerts_refresh, rep_record
from sessions.uploads import upload_analyse, uploads_sweep


@shared_task(
    # The database may be briefly away (restart, failover): retry with backoff instead of losing
    # the repetition. The unique (session, set, index) makes a retry harmless.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=40,
)
def record_rep(session_id: str, repetition: dict[str, Any]) -> None:
    session = ExerciseSession.objects.filter(pk=session_id).select_related("exercise").first()
    if session is None:
        return  # deleted meanwhile: nothing to record against
    rep_record(session=session, data=RepetitionMetrics(**repetition))


# Patients evaluated by the daily run: those with a plan in the last 4 weeks. A plan that ended
# longer ago has nothing left to miss, and its last numbers were judged while it ran.
ALERTS_ACTIVE_DAYS = 28


@shared_task(
    # The database may be briefly away: retry rather than skip a patient's day. Harmless to
    # repeat: an alert that exists is not created again.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=1,
    retry_backoff_max=60,
    max_retries=10,
)
def alerts_refresh_patient(patient_id: str) -> int:
    """Evaluate one patient's alerts for today; the number of new alerts."""
    patient = Patient.objects.filter(pk=patient_id).first()
    if patient is None:
        return 0  # deleted meanwhile: nothing to judge
    return len(alerts_refresh(patient=patient, today=timezone.localdate()))


@shared_task
def alerts_refresh_all() -> int:
    """The daily run (CELERY_BEAT_SCHEDULE): one task per patient with a recent plan; the number
    of patients queued.

    One task per patient rather than a loop here: a patient whose evaluation fails is retried
    alone and does not stop the others, the workers share the load, and each task stays short
    (acks_late redelivers at most one patient's work after a crash). Without Redis the tasks
    run eagerly, one after the other, in this process."""
    today = timezone.localdate()
    first = today - datetime.timedelta(days=ALERTS_ACTIVE_DAYS - 1)
    patient_ids = list(
        Assignment.objects.overlapping(first, today)
        .order_by("patient_id")
        .values_list("patient_id", flat=True)
        .distinct()
    )
    for patient_id in patient_ids:
        alerts_refresh_patient.delay(str(patient_id))
    return len(patient_ids)


@shared_task(
    # No automatic retry: a failed analysis says why on the upload's page, and its file is gone.
    # A message delivered twice (a long analysis outlives the broker's visibility timeout) finds
    # the upload claimed and returns.
    soft_time_limit=settings.UPLOAD_ANALYSIS_TIME_LIMIT_S,
)
def analyse_upload(upload_id: str) -> None:
    """Analyse an uploaded recording into its result (sessions.uploads.upload_analyse)."""
    upload_analyse(upload_id=upload_id)


@shared_task
def sweep_uploads() -> int:
    """Every 15 minutes (CELERY_BEAT_SCHEDULE): files and uploads a crashed worker left behind;
    the number of files deleted."""
    return uploads_sweep()
