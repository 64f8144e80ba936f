"""Log lines: one JSON object each in production, tied to the request, live connection or Celery
task they belong to, and free of patient data.

Each line carries the id of what it belongs to:

    request_id      an HTTP request: the proxy's X-Request-ID when it is a safe token, else a new
                    one; the response returns it (web/request_id.py)
    connection_id   a live WebSocket connection, from `bind_connection(scope)` in its consumer's
                    connect on
    task_id         a Celery task, from its start to its end (`log_celery_tasks`)

The ids live in context variables: asyncio copies them into every task it starts and asgiref into
every sync_to_async thread, so an id follows its request or connection wherever it goes and never
reaches another one.

settings.LOGGING sends every line through `ContextFilter` and `RedactFilter` to one of the two
formatters: `JsonFormatter` when REHAB_ENV=production or LOG_FORMAT=json, `TextFormatter` (plain
readable lines) otherwise. Messages name records by id, never a patient by name or address; as a
second line of defence, known personal keys passed as `extra` are blanked and so is any e-mail
address in a line, a traceback's included.
"""

import datetime
import logging
import logging.config
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from celery import signals
from django.conf import settings
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CONNECTION_ID: ContextVar[str | None] = ContextVar("connection_id", default=None)
TASK_ID: ContextVar[str | None] = ContextVar("task_id", default=None)
IDS = {"request_id": REQUEST_ID, "connection_id": CONNECTION_ID, "task_id": TASK_ID}

# Where the middleware leaves a request's id for Django's own lines about it (django.request logs
# 4xx/5xx responses after the middleware has returned, with the request as `extra`).
REQUEST_ID_META = "rehab.request_id"

# An id from outside is kept only when it cannot forge or break a line (no spaces, quotes,
# newlines or control characters) and is short: a UUID, nginx's $request_id, a trace id.
SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Blanked wherever they are passed as `extra`: who a patient is, and what the camera saw.
PERSONAL_KEYS = frozenset(
    {
        "email",
        "username",  # the sign-in form's field holds the e-mail address
        "first_name",
        "last_name",
        "full_name",
        "patient_name",
        "date_of_birth",
        "phone",
        "password",
        "frame",
        "image",
        "jpeg",
        "video",
    }
)
REDACTED = "[redacted]"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def new_id() -> str:
    return uuid.uuid4().hex


def safe_id(candidate: str | None) -> str | None:
    """`candidate` when it is safe to write into a log line as it is, else None."""
    return candidate if candidate and SAFE_ID.fullmatch(candidate) else None


@contextmanager
def bound(variable: ContextVar[str | None], value: str) -> Iterator[str]:
    """`variable` is `value` inside the block, and what it was again after it."""
    token = variable.set(value)
    try:
        yield value
    finally:
        variable.reset(token)


def bind_connection(scope: Mapping[str, Any]) -> str:
    """The id of a live connection's log lines, from now until the connection ends; call it first
    in the consumer's connect. The proxy's X-Request-ID of the upgrade request is kept when safe.

    No reset is needed: Channels runs each connection in an asyncio task of its own, whose context
    ends with it, and whatever the connection starts (tasks, sync_to_async) inherits the id."""
    headers = dict(scope.get("headers") or [])
    proposed = headers.get(b"x-request-id", b"").decode("latin-1")
    connection_id = safe_id(proposed) or new_id()
    CONNECTION_ID.set(connection_id)
    return connection_id


class ContextFilter(logging.Filter):
    """Puts the current request, connection and task ids on every record that has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in IDS.items():
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        meta = getattr(getattr(record, "request", None), "META", None)
        if not hasattr(record, "request_id") and isinstance(meta, dict) and REQUEST_ID_META in meta:
            record.request_id = meta[REQUEST_ID_META]
        return True


class RedactFilter(logging.Filter):
    """Blanks the values of PERSONAL_KEYS passed as `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in PERSONAL_KEYS.intersection(record.__dict__):
            setattr(record, key, REDACTED)
        return True


def without_emails(line: str) -> str:
    return EMAIL.sub(REDACTED, line)


class JsonFormatter(BaseJsonFormatter):
    """One JSON object a line: time (UTC), level, logger, message, the ids, any other `extra` and
    the exception's traceback."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            # Django puts the request object on its request lines: the id says which one.
            reserved_attrs=[*RESERVED_ATTRS, "request", "server_time", "taskName"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        created = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        log_data["time"] = created.isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)

    def format(self, record: logging.LogRecord) -> str:
        return without_emails(super().format(record))


class TextFormatter(logging.Formatter):
    """Development's plain lines: time, level, logger, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return without_emails(super().format(record))


# --- Celery --------------------------------------------------------------------------------------
# An attribute of the task's request: how to reset TASK_ID when the task ends.
_RESET = "rehab_task_id_reset"


def log_celery_tasks() -> None:
    """Celery workers log through settings.LOGGING (Celery would otherwise replace the root
    logger's handlers with its own text ones), and a task's lines carry its id."""
    signals.setup_logging.connect(_logging_from_settings, weak=False, dispatch_uid=__name__)
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid=__name__)
    signals.task_postrun.connect(_task_ended, weak=False, dispatch_uid=__name__)


def _logging_from_settings(**_: Any) -> None:
    logging.config.dictConfig(settings.LOGGING)


def _task_started(*, task_id: str, task: Any, **_: Any) -> None:
    setattr(task.request, _RESET, TASK_ID.set(task_id))


def _task_ended(*, task: Any, **_: Any) -> None:
    # The request is still the task's own: Celery pops it after task_postrun.
    token = getattr(task.request, _RESET, None)
    if token is not None:
        TASK_ID.reset(token)
