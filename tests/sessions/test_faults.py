"""Faults on the path of a repetition to PostgreSQL: nothing lost, nothing doubled.

Real Celery worker processes on the test database and the test Redis (the CI's second run):
- a worker killed with SIGKILL while it records repetitions; a new worker finishes the queue;
- the database unreachable for 5 s while a worker records them (the worker reaches PostgreSQL
  through a TCP proxy that the test cuts): the tasks retry and write once it is back.
"""

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

import pytest
from django.conf import settings
from django.db import connection

from sessions.models import ExerciseSession, Repetition
from sessions.tasks import record_rep
from tests.conftest import World, rep_data
from tests.processes import Background, TcpProxy, celery_worker
from tests.processes import test_database_url as database_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL or connection.vendor != "postgresql",
        reason="real worker processes need PostgreSQL and Redis (the CI's second run)",
    ),
]

REPS = 240
PER_SET = 40


def repetition(n: int) -> dict:
    return asdict(rep_data(set_number=1 + n // PER_SET, index=1 + n % PER_SET, rom=80.0 + n % 7))


def worker_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_VISIBILITY_TIMEOUT_S": "3",  # a dead worker's message comes back quickly
        **extra,
    }


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def stored(session: ExerciseSession) -> int:
    return Repetition.objects.filter(session=session).count()


@pytest.fixture
def queued(world: World) -> Iterator[ExerciseSession]:
    """An open session with REPS repetitions queued, every fifth one twice (a client retry)."""
    session = world.a.open_session
    for n in range(REPS):
        record_rep.delay(str(session.pk), repetition(n))
        if n % 5 == 0:
            record_rep.delay(str(session.pk), repetition(n))
    yield session


def assert_each_repetition_once(session: ExerciseSession) -> None:
    keys = list(Repetition.objects.filter(session=session).values_list("set_number", "index"))
    assert len(keys) == REPS
    assert len(set(keys)) == REPS


def test_a_worker_killed_while_recording_loses_and_doubles_nothing(
    queued: ExerciseSession,
) -> None:
    first = celery_worker(worker_env())
    try:
        assert wait_until(lambda: stored(queued) >= 40, timeout=60)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        at_kill = stored(queued)
    finally:
        first.stop()
    assert at_kill < REPS, "the worker finished before it was killed: queue more"

    second = celery_worker(worker_env())
    try:
        assert wait_until(lambda: stored(queued) >= REPS, timeout=90), stored(queued)
        time.sleep(2)  # a redelivered duplicate would land now
    finally:
        second.stop()
    assert_each_repetition_once(queued)


def test_the_database_away_for_5_seconds_delays_but_loses_nothing(
    queued: ExerciseSession,
) -> None:
    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    url = database_url().replace(f":{db['PORT'] or 5432}/", f":{proxy.port}/")
    worker: Background | None = None
    try:
        worker = celery_worker(worker_env(DATABASE_URL=url))
        assert wait_until(lambda: stored(queued) >= 20, timeout=60)
        proxy.cut()
        cut_at, during = time.monotonic(), stored(queued)
        time.sleep(5)
        assert stored(queued) - during <= 1  # at most the write that was in flight
        proxy.restore()
        assert wait_until(lambda: stored(queued) >= REPS, timeout=120), stored(queued)
        recovered_s = time.monotonic() - cut_at
        time.sleep(2)
    finally:
        if worker:
            worker.stop()
        proxy.close()
    assert_each_repetition_once(queued)
    retried = sum("Retry in" in line for line in worker.lines)
    assert retried >= 1, "no task was retried: the cut did not reach the worker"
    print(f"database away 5 s: all {REPS} repetitions stored {recovered_s:.1f} s after the cut")
