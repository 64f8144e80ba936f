"""Celery tasks of the live session: thin, by id, idempotent."""

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from analysis.repetitions import RepetitionMetrics
from sessions.models import ExerciseSession
from sessions.services import rep_record


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
