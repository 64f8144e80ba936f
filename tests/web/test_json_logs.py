"""Log lines (web/logs.py, web/request_id.py): one JSON object each with time, level, logger and
message; the id of the HTTP request, live connection or Celery task they belong to, which follows
it through asyncio tasks and sync_to_async threads and never reaches another; no e-mail address
or personal `extra` in them."""

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient, Client
from django.urls import reverse

from rehab.celery import app as celery_app
from tests.sessions.test_live_consumer import run
from web import logs
from web.request_id import HEADER

ROOT = Path(__file__).resolve().parents[2]
NEW_ID = re.compile(r"[0-9a-f]{32}")
logger = logging.getLogger("tests.web.json_logs")


class JsonLog:
    """What a handler set up like settings.LOGGING's console handler in JSON writes."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logs.JsonFormatter())
        self.handler.addFilter(logs.ContextFilter())
        self.handler.addFilter(logs.RedactFilter())

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def saying(self, message: str) -> dict[str, Any]:
        (line,) = [line for line in self.lines() if line["message"] == message]
        return line


@pytest.fixture
def json_log() -> Iterator[JsonLog]:
    log = JsonLog()
    root = logging.getLogger()
    root.addHandler(log.handler)
    yield log
    root.removeHandler(log.handler)


# --- HTTP requests -------------------------------------------------------------------------------
def test_a_request_logs_json_with_its_id_and_the_response_returns_it(
    db: None, json_log: JsonLog
) -> None:
    response = Client().get("/no-such-page/")
    request_id = response[HEADER]
    assert NEW_ID.fullmatch(request_id)
    line = json_log.saying("Not Found: /no-such-page/")
    assert line["request_id"] == request_id
    assert (line["level"], line["logger"], line["status_code"]) == (
        "WARNING",
        "django.request",
        404,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    assert "request" not in line  # Django's request object: its id says which one


def test_lines_written_inside_the_view_and_after_the_middleware_carry_the_id(
    db: None, json_log: JsonLog, settings: Any
) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login": {"limit": 1, "per_s": 60}}
    client = Client()
    client.post(reverse("login"), {"username": "someone", "password": "wrong"})
    refused = client.post(reverse("login"), {"username": "someone", "password": "wrong"})
    assert refused.status_code == 429
    # web/ratelimit.py logs inside the view, django.request once the middleware has returned.
    inside = json_log.saying("rate limit 'login' exceeded by ip:127.0.0.1")
    after = json_log.saying(f"Too Many Requests: {reverse('login')}")
    assert inside["request_id"] == after["request_id"] == refused[HEADER]


def test_a_safe_id_from_the_proxy_is_kept(db: None, json_log: JsonLog) -> None:
    proxy_id = "3f2b9c1e-7d4a-4e0b-9a51-0c2d8e6f1a7b"
    response = Client().get("/no-such-page/", headers={HEADER: proxy_id})
    assert response[HEADER] == proxy_id
    assert json_log.saying("Not Found: /no-such-page/")["request_id"] == proxy_id


@pytest.mark.parametrize(
    "unsafe", ['forged" "level": "INFO', "two words", "x" * 65, "tab\tseparated", "ü-nicode"]
)
def test_an_unsafe_id_from_outside_is_replaced(db: None, json_log: JsonLog, unsafe: str) -> None:
    response = Client().get("/no-such-page/", headers={HEADER: unsafe})
    assert NEW_ID.fullmatch(response[HEADER])
    assert json_log.saying("Not Found: /no-such-page/")["request_id"] == response[HEADER]


def test_concurrent_asgi_requests_each_log_their_own_id(db: None, json_log: JsonLog) -> None:
    async def both() -> list[Any]:
        client = AsyncClient()
        return await asyncio.gather(
            *(client.get(f"/no-such-page/{n}/", headers={HEADER: f"request-{n}"}) for n in (1, 2))
        )

    responses = async_to_sync(both)()
    assert [response[HEADER] for response in responses] == ["request-1", "request-2"]
    for n in (1, 2):
        assert json_log.saying(f"Not Found: /no-such-page/{n}/")["request_id"] == f"request-{n}"
    assert logs.REQUEST_ID.get() is None  # nothing stays behind in the caller


def test_two_concurrent_contexts_keep_their_ids_through_sync_to_async(json_log: JsonLog) -> None:
    async def serve(request_id: str, mine_set: asyncio.Event, other_set: asyncio.Event) -> None:
        with logs.bound(logs.REQUEST_ID, request_id):
            mine_set.set()
            await other_set.wait()  # both ids are set now, in two tasks of one loop
            await sync_to_async(logger.warning)(f"thread of {request_id}")
            logger.warning(f"loop of {request_id}")

    async def both() -> None:
        first, second = asyncio.Event(), asyncio.Event()
        await asyncio.gather(serve("a-1", first, second), serve("b-2", second, first))

    run(both)
    for request_id in ("a-1", "b-2"):
        for where in ("thread", "loop"):
            line = json_log.saying(f"{where} of {request_id}")
            assert line["request_id"] == request_id
    assert logs.REQUEST_ID.get() is None


# --- Live connections ----------------------------------------------------------------------------
class Repeater(AsyncWebsocketConsumer):
    """A live connection as sessions/consumers.py makes one: bound in connect, logging later."""

    async def connect(self) -> None:
        self.connection_id = logs.bind_connection(self.scope)
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await sync_to_async(logger.warning)(f"received {text_data}")
        await self.send(text_data=self.connection_id)


@pytest.mark.django_db  # a Channels consumer tidies the thread's database connections
def test_each_live_connection_logs_its_own_id_from_connect_on(json_log: JsonLog) -> None:
    async def two_connections() -> list[str]:
        sockets = [
            WebsocketCommunicator(Repeater.as_asgi(), "/ws/", headers=headers)
            for headers in ([(b"x-request-id", b"proxy-upgrade-7")], [])
        ]
        for socket in sockets:
            assert (await socket.connect())[0]
        ids = []
        for n, socket in enumerate(sockets):  # both stay open meanwhile
            await socket.send_to(text_data=f"frame-{n}")
            ids.append(await socket.receive_from())
        for socket in sockets:
            await socket.disconnect()
        return ids

    kept, new = run(two_connections)
    assert kept == "proxy-upgrade-7" and NEW_ID.fullmatch(new)
    assert json_log.saying("received frame-0")["connection_id"] == kept
    assert json_log.saying("received frame-1")["connection_id"] == new
    assert logs.CONNECTION_ID.get() is None


# --- Celery tasks --------------------------------------------------------------------------------
@celery_app.task(name="tests.web.test_json_logs.say_something")
def say_something(message: str) -> None:
    logger.warning(message)


def test_a_celery_task_logs_its_task_id(eager_celery: None, json_log: JsonLog) -> None:
    result = say_something.delay("from a task")
    line = json_log.saying("from a task")
    assert line["task_id"] == result.id
    assert "request_id" not in line
    assert logs.TASK_ID.get() is None  # the id ends with the task


def test_a_task_run_in_process_during_a_request_has_both_ids(
    eager_celery: None, json_log: JsonLog
) -> None:
    with logs.bound(logs.REQUEST_ID, "outer-request"):
        result = say_something.delay("from a task in a request")
    line = json_log.saying("from a task in a request")
    assert (line["request_id"], line["task_id"]) == ("outer-request", result.id)


# --- No patient data -----------------------------------------------------------------------------
def test_personal_extra_keys_and_email_addresses_are_blanked(json_log: JsonLog) -> None:
    logger.warning(
        "invitation for %s sent",
        "pat.doe@example.org",
        extra={"email": "pat.doe@example.org", "first_name": "Pat", "session_id": 7},
    )
    try:
        raise ValueError("duplicate key pat.doe@example.org")
    except ValueError:
        logger.exception("could not invite")
    written = json_log.stream.getvalue()
    assert "pat.doe" not in written and "Pat" not in written
    invited, failed = json_log.lines()
    assert invited["message"] == "invitation for [redacted] sent"
    assert (invited["email"], invited["first_name"], invited["session_id"]) == (
        "[redacted]",
        "[redacted]",
        7,
    )
    assert "ValueError: duplicate key [redacted]" in failed["exception"]


# --- The configuration, in a fresh process as a server starts -------------------------------------
def stderr_of_a_fresh_process(**env: str) -> str:
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('sessions.consumers').warning("
        "'live access check failed for %s', 'pat@example.org', extra={'session_id': 7})"
    )
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/"),
        "DJANGO_SETTINGS_MODULE": "rehab.settings",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"LOG_FORMAT": "json"},
        {"REHAB_ENV": "production", "DJANGO_SECRET_KEY": "x" * 50, "DJANGO_ALLOWED_HOSTS": "a.b"},
    ],
)
def test_production_and_log_format_json_write_one_json_object_a_line(env: dict[str, str]) -> None:
    (line,) = stderr_of_a_fresh_process(**env).splitlines()
    written = json.loads(line)
    assert list(written)[:4] == ["time", "level", "logger", "message"]
    assert written["message"] == "live access check failed for [redacted]"
    assert (written["logger"], written["session_id"]) == ("sessions.consumers", 7)


def test_development_writes_plain_text() -> None:
    (line,) = stderr_of_a_fresh_process().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING sessions.consumers: "
        r"live access check failed for \[redacted\]",
        line,
    )
