"""A new live session beyond what the pose workers serve at full rate is told that the service is
busy (4503, sessions/socket_cap.py), keeps its session and is admitted once there is room; an
admitted stream keeps its place when the capacity falls; the capacity follows the pose workers
alive (their heartbeats, with Redis)."""

import time
from typing import Any

import pytest
from django.conf import settings as django_settings

from sessions import protocol
from sessions.socket_cap import LocalSocketRegistry, live_capacity
from tests.conftest import World
from tests.processes import production_workers
from tests.sessions.test_live_consumer import communicator, connect_ready, headers_of, run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_stream(settings: Any) -> None:
    """The local pool with one process, serving one stream at full rate."""
    settings.POSE_TRANSPORT = "local"
    settings.POSE_LOCAL_WORKERS = 1
    settings.LIVE_STREAMS_PER_POSE_WORKER = 1


async def refused_as_busy(comm: Any) -> dict[str, Any]:
    connected, _ = await comm.connect(timeout=10)
    assert connected  # accepted, so that the page learns why it is closed
    error = await comm.receive_json_from(timeout=10)
    close = await comm.receive_output(timeout=10)
    assert (close["type"], close["code"]) == ("websocket.close", protocol.CLOSE_BUSY)
    return dict(error)


def test_a_session_beyond_capacity_is_told_the_service_is_busy_and_gets_in_once_there_is_room(
    world: World, one_stream: None
) -> None:
    exercising = communicator(headers_of(world.p.user), world.a.open_session)
    waiting = headers_of(world.q.user)

    async def scenario() -> dict[str, Any]:
        await connect_ready(exercising)
        error = await refused_as_busy(communicator(waiting, world.b.open_session))
        await exercising.disconnect()
        admitted = communicator(waiting, world.b.open_session)
        await connect_ready(admitted)
        await admitted.disconnect()
        return error

    error = run(scenario)
    assert (error["type"], error["code"], error["retry_s"]) == ("error", "service_busy", 30)
    assert "tries again in 30 seconds" in error["message"]
    world.b.open_session.refresh_from_db()
    assert world.b.open_session.status == "in_progress"  # kept for when there is room


def test_the_capacity_grows_with_the_setting(world: World, one_stream: None, settings: Any) -> None:
    settings.LIVE_STREAMS_PER_POSE_WORKER = 2
    first = communicator(headers_of(world.p.user), world.a.open_session)
    second = communicator(headers_of(world.q.user), world.b.open_session)

    async def scenario() -> None:
        await connect_ready(first)
        await connect_ready(second)
        for comm in (first, second):
            await comm.disconnect()

    run(scenario)


def test_an_admitted_stream_keeps_its_place_when_the_capacity_falls() -> None:
    registry = LocalSocketRegistry()

    def claim(connection: str, cap: int) -> bool:
        return registry.claim(pool="service", connection_id=connection, cap=cap, stale_s=30)

    assert claim("exercising", cap=1)
    assert claim("exercising", cap=0)  # a worker died: the renewal still holds
    assert not claim("new", cap=0)


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="pose workers beat in Redis")
def test_the_capacity_follows_the_pose_workers_alive(settings: Any) -> None:
    settings.POSE_TRANSPORT = "channels"
    settings.LIVE_STREAMS_PER_POSE_WORKER = 3

    def capacity_within(expected: int, seconds: float) -> int | None:
        deadline = time.monotonic() + seconds
        while (capacity := live_capacity()) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        return capacity

    assert capacity_within(0, 15) == 0  # a worker of an earlier test may still be beating
    with production_workers(pose_workers=1, celery=False):
        assert capacity_within(3, 10) == 3
    assert capacity_within(0, 5) == 0  # it deletes its heartbeat as it stops
