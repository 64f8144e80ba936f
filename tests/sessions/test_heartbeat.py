"""Pose worker heartbeats (sessions/heartbeat.py) and the readiness check that reads them
(sessions/health.py): a real `manage.py pose_worker` beats, a killed one's key expires, a
stopped one's goes at once, and a worker stuck in a frame goes stale.

Each test has a Redis of its own (tests/processes.py RedisServer), so that heartbeats left by
other tests' workers count for nothing here.
"""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from sessions import heartbeat
from tests.processes import BIN, ROOT, Background, RedisServer
from tests.sessions.test_live_consumer import run

pytestmark = pytest.mark.django_db  # the readiness endpoint reaches the database

WITH_REDIS = pytest.mark.skipif(
    not django_settings.REDIS_URL, reason="heartbeats live in Redis (the CI's second run)"
)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def alive(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return heartbeat.count_alive(client)
    finally:
        client.close()


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def probe(url: str) -> int:
    """The pose-worker container's health check; its exit code."""
    command = [sys.executable, "-m", "sessions.heartbeat"]
    env = {**os.environ, "REDIS_URL": url}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=False).returncode


def readiness_of_pose_workers() -> str:
    response = Client().get(reverse("health_ready"), HTTP_ACCEPT="application/json")
    verdict: str = response.json()["checks"]["PoseWorkers"]
    return verdict


def test_the_container_probe_imports_no_django() -> None:
    """It runs every 10 s in each pose-worker container: a Django start would cost ~1.5 s."""
    code = "import sessions.heartbeat, sys; print(any(m.startswith('django') for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@WITH_REDIS
def test_a_beating_loop_keeps_its_key_past_the_ttl_and_deletes_it_when_stopped(
    own_redis: RedisServer,
) -> None:
    async def scenario() -> list[int]:
        stopping = asyncio.Event()
        beating = asyncio.ensure_future(
            heartbeat.beat(own_redis.url, stopping, ttl_s=0.6, every_s=0.1)
        )
        await asyncio.sleep(1.0)  # longer than the TTL: refreshed
        counts = [alive(own_redis.url)]
        stopping.set()
        await beating
        return [*counts, alive(own_redis.url)]

    assert run(scenario) == [1, 0]


@WITH_REDIS
def test_a_loop_stuck_longer_than_the_ttl_goes_stale_and_beats_again_after(
    own_redis: RedisServer,
) -> None:
    """The heartbeat runs on the worker's event loop: a frame that blocks the loop blocks it."""

    async def scenario() -> list[int]:
        stopping = asyncio.Event()
        beating = asyncio.ensure_future(
            heartbeat.beat(own_redis.url, stopping, ttl_s=0.6, every_s=0.1)
        )
        await asyncio.sleep(0.3)
        counts = [alive(own_redis.url)]
        time.sleep(1.0)  # a frame that hangs: nothing else runs on the loop
        counts.append(alive(own_redis.url))
        await asyncio.sleep(0.3)
        counts.append(alive(own_redis.url))
        stopping.set()
        await beating
        return counts

    assert run(scenario) == [1, 0, 1]


def pose_worker(url: str) -> Background:
    env = {
        **os.environ,
        "REDIS_URL": url,
        "POSE_TRANSPORT": "channels",
        "POSE_HEARTBEAT_TTL_S": "1.5",
        "POSE_HEARTBEAT_EVERY_S": "0.3",
    }
    return Background([str(BIN / "python"), "manage.py", "pose_worker"], env)


@WITH_REDIS
def test_ready_counts_real_pose_workers_by_heartbeat_a_killed_one_expires_a_stopped_one_goes(
    own_redis: RedisServer, settings: Any
) -> None:
    settings.REDIS_URL = own_redis.url
    settings.POSE_TRANSPORT = "channels"
    settings.HEALTH_CELERY_TIMEOUT_S = 0.2  # no Celery worker here: only its verdict is slower
    assert readiness_of_pose_workers() == "Unavailable"
    assert probe(own_redis.url) == 1

    killed, stopped = workers = [pose_worker(own_redis.url) for _ in range(2)]
    try:
        for worker in workers:
            worker.wait_for("pose worker ready")
        assert wait_until(lambda: alive(own_redis.url) == 2, timeout_s=5)
        assert readiness_of_pose_workers() == "OK"
        assert probe(own_redis.url) == 0  # both run on this host

        killed.process.kill()
        killed.process.wait()
        # No goodbye from a killed worker: its key lives out its TTL (last beat <= 0.3 s ago).
        assert alive(own_redis.url) == 2
        assert wait_until(lambda: alive(own_redis.url) == 1, timeout_s=3)
        assert readiness_of_pose_workers() == "OK"

        stopped.stop()  # SIGTERM: its key goes with it, not a TTL later
        assert stopped.process.returncode == 0
        assert alive(own_redis.url) == 0
        assert readiness_of_pose_workers() == "Unavailable"
        assert probe(own_redis.url) == 1
    finally:
        for worker in workers:
            worker.stop()
