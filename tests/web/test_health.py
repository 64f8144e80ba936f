"""/health/live and /health/ready (web/health.py, sessions/health.py): who may call them, what
they answer and when readiness fails, on the embedded defaults and with Redis and real worker
processes (the CI's second run)."""

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.urls import resolve, reverse

from sessions import pose_client
from tests.processes import TcpProxy, production_workers
from tests.sessions.test_live_consumer import run
from web.health import ReadinessView

pytestmark = pytest.mark.django_db  # readiness reaches the database

EMBEDDED_ONLY = pytest.mark.skipif(
    bool(django_settings.REDIS_URL), reason="the embedded defaults (no REDIS_URL) only"
)
PRODUCTION_TOPOLOGY = pytest.mark.skipif(
    not django_settings.REDIS_URL or connection.vendor != "postgresql",
    reason="real worker processes need PostgreSQL and Redis (the CI's second run)",
)
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def verdicts(client: Client, name: str = "health_ready") -> tuple[int, dict[str, Any]]:
    response = client.get(reverse(name), HTTP_ACCEPT="application/json")
    return response.status_code, response.json()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def wait_for_status(client: Client, status: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if verdicts(client)[0] == status:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def started_pool() -> Iterator[None]:
    """The local pose processes started and answering (their models loaded)."""
    pose_client.warm_up()
    pool = pose_client.started_local_pool()
    assert pool is not None
    pool.submit(os.getpid).result(timeout=60)
    yield


def test_live_answers_anyone_in_plain_text_and_sets_no_cookie() -> None:
    response = Client().get(reverse("health_live"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == b"ok\n"
    assert not response.cookies
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"  # set after the probe middleware in the chain


def unreachable_cache(settings: Any) -> int:
    """Points the cache at a closed port; returns the port."""
    port = closed_port()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    return port


def test_live_checks_nothing_so_no_outage_restarts_the_web_process(settings: Any) -> None:
    unreachable_cache(settings)
    assert verdicts(Client(), "health_live") == (200, {"status": "ok", "checks": {}})


@EMBEDDED_ONLY
def test_ready_on_the_embedded_defaults_names_each_check_in_json_or_plain_text(
    started_pool: None,
) -> None:
    client = Client()
    status, body = verdicts(client)
    assert status == 200
    assert body == {
        "status": "ok",
        "checks": {"Database": "OK", "Cache": "OK", "PoseWorkers": "OK"},
    }
    plain = client.get(reverse("health_ready")).content.decode()
    assert plain.splitlines() == ["ok", "Database: OK", "Cache: OK", "PoseWorkers: OK"]


@EMBEDDED_ONLY
def test_ready_fails_while_a_local_pose_process_is_dead_until_the_next_frame_replaces_them(
    started_pool: None,
) -> None:
    pool = pose_client.started_local_pool()
    assert pool is not None
    os.kill(pool.submit(os.getpid).result(timeout=10), signal.SIGKILL)
    # The pool learns of the death from its own thread: the other process may answer meanwhile.
    deadline = time.monotonic() + 10
    while (verdict := verdicts(Client()))[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    status, body = verdict
    assert status == 503 and body["checks"]["PoseWorkers"] == "Unavailable"

    answer = run(lambda: pose_client.LocalPoseClient().estimate(b"", 0.0, None))
    assert answer == pose_client.TIMEOUT_ANSWER  # that frame is lost; the pool is replaced
    pose_client.warm_up()
    new_pool = pose_client.started_local_pool()
    assert new_pool is not None and new_pool is not pool
    new_pool.submit(os.getpid).result(timeout=60)
    assert verdicts(Client())[0] == 200


def test_the_probes_answer_any_host_over_plain_http_with_production_security(
    settings: Any,
) -> None:
    """A compose or orchestrator probe sends Host 127.0.0.1:8000 or the container's name, over
    HTTP; production's ALLOWED_HOSTS holds only the public name and HTTPS is enforced."""
    settings.ALLOWED_HOSTS = ["rehab.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    for host in ("127.0.0.1:8000", "localhost", "web:8000"):
        response = client.get(reverse("health_live"), HTTP_HOST=host)
        assert response.status_code == 200, host
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    # Every other page still validates the host and moves to HTTPS.
    assert client.get(reverse("login"), HTTP_HOST="127.0.0.1:8000").status_code == 400
    redirect = client.get(reverse("login"), HTTP_HOST="rehab.example.org")
    assert redirect.status_code == 301 and redirect["Location"].startswith("https://")


def test_the_probes_are_never_rate_limited(settings: Any) -> None:
    most = max(rate["limit"] for rate in settings.RATE_LIMITS.values())
    client = Client()
    statuses = {client.get(reverse("health_live")).status_code for _ in range(most + 1)}
    assert statuses == {200}


def test_a_failing_check_is_named_and_its_details_stay_out_of_the_answer(settings: Any) -> None:
    port = unreachable_cache(settings)
    response = Client().get(reverse("health_ready"), HTTP_ACCEPT="application/json")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["Cache"] != "OK" and body["checks"]["Database"] == "OK"
    assert str(port) not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()


def test_the_compose_health_check_of_web_calls_the_readiness_view() -> None:
    test = " ".join(
        yaml.safe_load(COMPOSE_FILE.read_text())["services"]["web"]["healthcheck"]["test"]
    )
    [url] = re.findall(r"http://[^'\" ]+", test)
    assert resolve(urlsplit(url).path).func.view_class is ReadinessView  # type: ignore[attr-defined]


@PRODUCTION_TOPOLOGY
def test_ready_needs_a_celery_worker_that_answers_its_ping(settings: Any) -> None:
    settings.HEALTH_CELERY_TIMEOUT_S = 0.5
    status, body = verdicts(Client())
    assert status == 503 and body["checks"]["CeleryWorkers"] == "Unavailable"
    with production_workers(pose_workers=0, celery=True):
        status, body = verdicts(Client())
    assert body["checks"]["CeleryWorkers"] == "OK"


@PRODUCTION_TOPOLOGY
def test_ready_fails_while_redis_is_unreachable_and_recovers(settings: Any) -> None:
    """The checks reach Redis through a proxy that the test cuts (the real Redis stays up for
    every other process); the workers reach it directly and keep running."""
    direct = settings.REDIS_URL
    redis_url = urlsplit(direct)
    proxy = TcpProxy(redis_url.hostname or "127.0.0.1", redis_url.port or 6379)
    through_proxy = f"redis://127.0.0.1:{proxy.port}{redis_url.path}"
    settings.REDIS_URL = through_proxy
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": through_proxy}}
    client = Client()
    try:
        with production_workers(pose_workers=1, celery=True, redis_url=direct):
            # The worker's first heartbeat follows its "ready" line by a moment.
            assert wait_for_status(client, 200), verdicts(client)
            proxy.cut()
            response = client.get(reverse("health_ready"), HTTP_ACCEPT="application/json")
            checks = response.json()["checks"]
            assert response.status_code == 503
            assert {name for name, verdict in checks.items() if verdict != "OK"} == {
                "Redis",
                "Cache",
                "PoseWorkers",
            }
            assert str(proxy.port) not in response.content.decode()
            proxy.restore()
            assert verdicts(client)[0] == 200
    finally:
        proxy.close()
