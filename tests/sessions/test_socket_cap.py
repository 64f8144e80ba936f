"""At most LIVE_MAX_SOCKETS_PER_USER live sockets per user (sessions/socket_cap.py): the registries
themselves (in-process, and Redis when REDIS_URL is set), the real consumer over the real ASGI
application, and, on PostgreSQL + Redis, a socket held by another process that is then killed."""

import asyncio
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from sessions import protocol
from sessions.socket_cap import (
    LocalSocketRegistry,
    RedisSocketRegistry,
    SocketRegistry,
)
from tests.conftest import World
from tests.processes import Background
from tests.processes import test_database_url as shared_database_url
from tests.sessions.test_live_consumer import communicator, connect_ready, run

LIVE = pytest.mark.django_db(transaction=True)
REDIS_ONLY = pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL")
REGISTRIES = ["local", pytest.param("redis", marks=REDIS_ONLY)]


@pytest.fixture(autouse=True)
def no_slots_from_earlier_runs() -> Iterator[None]:
    """User ids start again with each test database; slots of an earlier run may not have gone
    stale yet in the test Redis."""
    if django_settings.REDIS_URL:
        client = redis.Redis.from_url(django_settings.REDIS_URL)
        for key in client.scan_iter(match="rehab:live-sockets:*"):
            client.delete(key)
    yield


@pytest.fixture(params=REGISTRIES)
def registry(request: pytest.FixtureRequest) -> SocketRegistry:
    if request.param == "redis":
        return RedisSocketRegistry(django_settings.REDIS_URL)
    return LocalSocketRegistry()


def a_user_id() -> int:
    return uuid.uuid4().int % 10**12


# --- The registries ------------------------------------------------------------------------------
def test_a_user_gets_at_most_cap_slots_and_a_released_one_can_be_taken_again(
    registry: SocketRegistry,
) -> None:
    user, other_user = a_user_id(), a_user_id()

    def claim(user_id: int, connection: str) -> bool:
        return registry.claim(pool=str(user_id), connection_id=connection, cap=2, stale_s=30)

    assert claim(user, "a") and claim(user, "b")
    assert not claim(user, "c")
    assert claim(user, "a")  # claiming again (the heartbeat) keeps a slot
    assert claim(other_user, "c")  # per user
    registry.release(pool=str(user), connection_id="b")
    assert claim(user, "c")
    assert not claim(user, "d")


def test_a_slot_not_claimed_again_in_time_goes_stale_and_is_free(
    registry: SocketRegistry,
) -> None:
    user = a_user_id()

    def claim(connection: str) -> bool:
        return registry.claim(pool=str(user), connection_id=connection, cap=2, stale_s=1.0)

    assert claim("alive") and claim("crashed")
    time.sleep(0.6)
    assert claim("alive")  # its heartbeat
    assert not claim("new")
    time.sleep(0.6)  # "crashed" last claimed 1.2 s ago, "alive" 0.6 s ago
    assert claim("new")
    assert not claim("another")


def test_racing_claims_never_exceed_the_cap(registry: SocketRegistry) -> None:
    user, racers = a_user_id(), 24
    start = threading.Barrier(racers)
    won: list[bool] = []

    def race(index: int) -> None:
        start.wait()
        won.append(registry.claim(pool=str(user), connection_id=f"c{index}", cap=3, stale_s=30))

    threads = [threading.Thread(target=race, args=(index,)) for index in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == racers and won.count(True) == 3


# --- The consumer --------------------------------------------------------------------------------
def headers_for(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return [(b"origin", b"http://testserver"), (b"cookie", f"sessionid={cookie}".encode())]


async def refused_over_the_cap(comm: Any) -> None:
    connected, _ = await comm.connect(timeout=10)
    assert connected  # accepted, so that the page learns why it is closed
    error = await comm.receive_json_from(timeout=10)
    assert (error["type"], error["code"], error["seq"]) == ("error", "too_many_sockets", None)
    assert "Close one of them first" in error["message"]
    close = await comm.receive_output(timeout=10)
    assert (close["type"], close["code"]) == ("websocket.close", protocol.CLOSE_TOO_MANY_SOCKETS)


@LIVE
def test_a_third_live_socket_of_one_patient_gets_an_error_and_is_closed_with_4429(
    world: World,
) -> None:
    headers = headers_for(world.p.user)
    other_patient = headers_for(world.q.user)
    session = world.a.open_session

    async def scenario() -> None:
        first, second, third = (communicator(headers, session) for _ in range(3))
        await connect_ready(first)
        await connect_ready(second)
        await refused_over_the_cap(third)
        # Another patient is not affected.
        other = communicator(other_patient, world.b.open_session)
        await connect_ready(other)
        for comm in (first, second, other):
            await comm.disconnect()

    run(scenario)


@LIVE
def test_a_socket_that_closes_frees_its_slot_for_a_new_one(world: World) -> None:
    headers = headers_for(world.p.user)
    session = world.a.open_session

    async def scenario() -> None:
        first, second = communicator(headers, session), communicator(headers, session)
        await connect_ready(first)
        await connect_ready(second)
        await refused_over_the_cap(communicator(headers, session))
        await first.disconnect()
        again = communicator(headers, session)
        await connect_ready(again)
        for comm in (second, again):
            await comm.disconnect()

    run(scenario)


@LIVE
def test_the_cap_follows_the_setting(world: World, settings: Any) -> None:
    settings.LIVE_MAX_SOCKETS_PER_USER = 1
    headers = headers_for(world.p.user)

    async def scenario() -> None:
        first = communicator(headers, world.a.open_session)
        await connect_ready(first)
        await refused_over_the_cap(communicator(headers, world.a.open_session))
        await first.disconnect()

    run(scenario)


@LIVE
@pytest.mark.skipif(
    not django_settings.REDIS_URL
    or "postgres" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="another process shares the test database on PostgreSQL, and the slots on Redis",
)
def test_the_cap_holds_across_processes_and_a_killed_holders_slot_frees_once_stale(
    world: World, settings: Any
) -> None:
    """A second process (tests/sessions/live_socket_holder.py: the real ASGI application with its
    own consumer, access checks and heartbeats) holds one socket; this process may open one more,
    not two. Killed with SIGKILL, the holder cleans nothing up: its slot frees when its heartbeat
    goes stale."""
    settings.LIVE_SOCKET_STALE_S = 5.0
    headers = headers_for(world.p.user)
    cookie = headers[1][1].decode().removeprefix("sessionid=")
    session = world.a.open_session
    env = {
        **os.environ,
        "DATABASE_URL": shared_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "POSE_TRANSPORT": "channels",
    }
    argv = [sys.executable, "-m", "tests.sessions.live_socket_holder", str(session.pk), cookie]
    holder = Background(argv, env)

    async def first_message(comm: Any) -> str:
        await comm.connect(timeout=10)
        message = await comm.receive_json_from(timeout=10)
        if message["type"] == "ready":
            await comm.disconnect()
        else:
            assert message["code"] == "too_many_sockets"
        return str(message["type"])

    async def scenario() -> float:
        mine = communicator(headers, session)
        await connect_ready(mine)
        await refused_over_the_cap(communicator(headers, session))
        holder.process.kill()
        holder.process.wait()
        killed_at = time.monotonic()
        await refused_over_the_cap(communicator(headers, session))  # not free at once
        while await first_message(communicator(headers, session)) != "ready":
            assert time.monotonic() - killed_at < 20, "the killed holder's slot never freed"
            await asyncio.sleep(0.25)
        freed_after = time.monotonic() - killed_at
        await mine.disconnect()
        return freed_after

    try:
        holder.wait_for("ready")
        freed_after = run(scenario)
    finally:
        holder.stop()
    # Its last heartbeat came at most LIVE_ACCESS_CHECK_S before the kill.
    stale_s = settings.LIVE_SOCKET_STALE_S
    assert stale_s - django_settings.LIVE_ACCESS_CHECK_S - 0.5 <= freed_after <= stale_s + 1.0
