"""The Celery app. Without REDIS_URL, settings make tasks run eagerly in the calling process.

Its signals feed the task metrics (web.metrics): the time from publication to start (a header the
publisher adds), the run time, failures; the worker serves its metrics on METRICS_PORT, and a
prefork child that exits has its live gauges forgotten.
"""

import os
import time
from typing import Any

from celery import Celery, Task, signals
from django.conf import settings

from web import logs, metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rehab.settings")

app = Celery("rehab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logs.log_celery_tasks()  # workers log as settings.LOGGING says; a task's lines carry its id

PUBLISHED_AT = "published_at"  # a message header: the publisher's wall clock, time.time()
_started: dict[str, float] = {}  # task id -> time.perf_counter() at its start, in this process


@signals.before_task_publish.connect
def _stamp_publication(headers: dict[str, Any], **kwargs: Any) -> None:
    headers[PUBLISHED_AT] = time.time()


@signals.task_prerun.connect
def _task_started(task_id: str, task: Task, **kwargs: Any) -> None:
    _started[task_id] = time.perf_counter()
    published = getattr(task.request, PUBLISHED_AT, None)  # absent when run eagerly
    if isinstance(published, int | float):
        metrics.task_waited(task.name, time.time() - published)


@signals.task_postrun.connect
def _task_finished(task_id: str, task: Task, **kwargs: Any) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        metrics.task_ran(task.name, time.perf_counter() - started)


@signals.task_failure.connect
def _task_failed(sender: Task, **kwargs: Any) -> None:
    metrics.task_failed(sender.name)


@signals.worker_ready.connect
def _serve_metrics(**kwargs: Any) -> None:
    metrics.serve_on_port(settings.METRICS_PORT)


@signals.worker_process_shutdown.connect
def _child_exited(pid: int, **kwargs: Any) -> None:
    metrics.process_exited(pid)
