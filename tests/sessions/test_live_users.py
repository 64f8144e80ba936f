"""Live sockets follow their user's sign-in (sessions/live_users.py): signing out, deactivation, a
timed-out, deleted or outdated session close them with 4403 within 5 s, and no frame is processed
after that. The real consumer over the real ASGI application, with real pose worker processes."""

import json
import time
from importlib import import_module
from pathlib import Path
from typing import Any

import cv2
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from sessions import protocol
from sessions.live_users import notify_user_signed_out
from tests.conftest import World
from tests.sessions.test_live_consumer import (
    browser_headers,
    communicator,
    connect_ready,
    frame,
    receive_until,
    run,
)
from web.signin_lifetime import LAST_ACTIVITY

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLOSE_WITHIN_S = 5.0  # the bound


@pytest.fixture(autouse=True)
def local_pose_workers(settings: Any, eager_celery: None) -> None:
    settings.POSE_TRANSPORT = "local"


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    """A photo of a person, as the page sends it (640 px wide JPEG)."""
    image = cv2.imread(str(FIXTURES / "pose.jpg"))
    scale = min(640 / image.shape[1], 480 / image.shape[0])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return bytes(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes())


def signed_in(user: Any) -> tuple[Client, list[tuple[bytes, bytes]]]:
    """A browser signed in as `user`: its HTTP client and its WebSocket handshake headers."""
    client = Client()
    client.force_login(user)
    return client, browser_headers(client)


def session_key_of(client: Client) -> str:
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


def stored_session(key: str) -> Any:
    return import_module(django_settings.SESSION_ENGINE).SessionStore(key)


def last_activity(key: str) -> float:
    return float(stored_session(key)[LAST_ACTIVITY])


async def close_of(comm: Any, within_s: float) -> tuple[int, float, list[dict[str, Any]]]:
    """Wait for the server's close: (its code, seconds it took, the messages before it)."""
    started = time.monotonic()
    messages: list[dict[str, Any]] = []
    while True:
        left = within_s - (time.monotonic() - started)
        output = await comm.receive_output(timeout=max(left, 0.01))
        if output["type"] == "websocket.close":
            return output.get("code"), time.monotonic() - started, messages
        messages.append(json.loads(output["text"]))


async def closes_for_sign_out(comm: Any) -> float:
    code, took, _ = await close_of(comm, CLOSE_WITHIN_S)
    assert code == protocol.CLOSE_SIGNED_OUT
    assert await comm.receive_nothing(timeout=1.0)  # nothing after the close
    return took


# --- Events --------------------------------------------------------------------------------------
def test_signing_out_closes_that_browsers_live_socket_at_once_with_4403(world: World) -> None:
    client, headers = signed_in(world.p.user)

    async def scenario() -> float:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        await sync_to_async(client.post)(reverse("logout"))
        return await closes_for_sign_out(comm)

    assert run(scenario) < 1.0  # an event, not the periodic check


def test_signing_out_in_another_browser_leaves_this_browsers_socket_open(world: World) -> None:
    _, headers = signed_in(world.p.user)
    other_browser, _ = signed_in(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        await sync_to_async(other_browser.post)(reverse("logout"))
        # Longer than the periodic check: this browser's session is still signed in.
        assert await comm.receive_nothing(timeout=django_settings.LIVE_ACCESS_CHECK_S + 1.5)
        await comm.disconnect()

    run(scenario)


def test_deactivating_the_user_closes_every_live_socket_of_theirs_within_5_s(
    world: World,
) -> None:
    user = world.p.user
    _, laptop = signed_in(user)
    _, phone = signed_in(user)

    def deactivate() -> None:
        user.is_active = False
        user.save()

    async def scenario() -> list[float]:
        sockets = [communicator(headers, world.a.open_session) for headers in (laptop, phone)]
        for comm in sockets:
            await connect_ready(comm)
        await sync_to_async(deactivate)()
        return [await closes_for_sign_out(comm) for comm in sockets]

    assert all(took < CLOSE_WITHIN_S for took in run(scenario))


def test_a_sign_out_notified_from_an_event_loops_own_thread_still_closes_the_sockets(
    world: World,
) -> None:
    """Synchronous code running on an event loop's thread (where async_to_sync refuses to run),
    e.g. a deactivation saved from a script under Playwright's loop: the loop sends it."""
    user = world.p.user
    _, headers = signed_in(user)

    async def scenario() -> float:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        notify_user_signed_out(user_id=user.pk, session_key=None)  # no await: sync code
        return await closes_for_sign_out(comm)

    assert run(scenario) < CLOSE_WITHIN_S


def test_a_frame_sent_after_signing_out_gets_no_pose_answer(world: World, jpeg: bytes) -> None:
    client, headers = signed_in(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        await comm.send_to(bytes_data=frame(1, jpeg))
        assert (await receive_until(comm, "pose"))["seq"] == 1  # the stream works
        await comm.send_to(bytes_data=frame(2, jpeg))  # may be at a pose worker at the sign-out
        await sync_to_async(client.post)(reverse("logout"))
        await comm.send_to(bytes_data=frame(3, jpeg))
        code, _, before = await close_of(comm, CLOSE_WITHIN_S)
        assert code == protocol.CLOSE_SIGNED_OUT
        assert 3 not in [message.get("seq") for message in before]
        # No late answer either (frame 2's, had it been at a worker).
        assert await comm.receive_nothing(timeout=2.0)

    run(scenario)


# --- Endings without an event: the periodic check ------------------------------------------------
def _go_idle(key: str) -> None:
    session = stored_session(key)
    session[LAST_ACTIVITY] = time.time() - django_settings.SESSION_IDLE_TIMEOUT_S - 1
    session.save()


def _delete_session(key: str) -> None:
    Session.objects.filter(session_key=key).delete()


def _change_password_elsewhere(user: Any) -> None:
    user.set_password("a new and different passphrase")
    user.save()


@pytest.mark.parametrize("ending", ["idle timeout", "session row deleted", "password changed"])
def test_a_session_ending_without_an_event_closes_its_live_socket_within_5_s(
    world: World, ending: str
) -> None:
    client, headers = signed_in(world.p.user)
    key = session_key_of(client)
    end = {
        "idle timeout": lambda: _go_idle(key),
        "session row deleted": lambda: _delete_session(key),
        "password changed": lambda: _change_password_elsewhere(world.p.user),
    }[ending]

    async def scenario() -> float:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        await sync_to_async(end)()
        return await closes_for_sign_out(comm)

    took = run(scenario)
    assert took <= django_settings.LIVE_ACCESS_CHECK_S + 1.0 < CLOSE_WITHIN_S


def test_an_idle_session_cannot_open_a_live_socket(world: World) -> None:
    client, headers = signed_in(world.p.user)
    _go_idle(session_key_of(client))

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        connected, _ = await comm.connect(timeout=10)
        assert connected
        code, _, before = await close_of(comm, CLOSE_WITHIN_S)
        assert (code, before) == (protocol.CLOSE_SIGNED_OUT, [])

    run(scenario)


# --- Frames are activity -------------------------------------------------------------------------
def test_frames_flowing_count_as_activity_written_at_most_once_a_minute(
    world: World, jpeg: bytes, settings: Any
) -> None:
    settings.LIVE_ACCESS_CHECK_S = 0.3
    settings.LIVE_MAX_FRAMES_PER_S = 1000
    client, headers = signed_in(world.p.user)
    key = session_key_of(client)
    session = stored_session(key)
    session[LAST_ACTIVITY] = time.time() - 600  # ten minutes without a page request
    session.save()

    async def stream(first: int, seconds: float) -> int:
        sequence, until = first, time.monotonic() + seconds
        while time.monotonic() < until:
            await comm.send_to(bytes_data=frame(sequence, jpeg))
            await receive_until(comm, "pose")
            sequence += 1
        return sequence

    async def scenario() -> tuple[float, float]:
        await connect_ready(comm)
        sequence = await stream(1, seconds=1.0)
        touched = await sync_to_async(last_activity)(key)
        await stream(sequence, seconds=1.0)  # several more checks, all within the minute
        again = await sync_to_async(last_activity)(key)
        await comm.disconnect()
        return touched, again

    comm = communicator(headers, world.a.open_session)
    touched, again = run(scenario)
    assert time.time() - touched < 5
    assert again == touched


def test_an_open_socket_without_frames_is_not_activity(world: World, settings: Any) -> None:
    settings.LIVE_ACCESS_CHECK_S = 0.3
    client, headers = signed_in(world.p.user)
    key = session_key_of(client)
    session = stored_session(key)
    session[LAST_ACTIVITY] = idle_since = time.time() - 600
    session.save()

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        assert await comm.receive_nothing(timeout=1.5)
        await comm.disconnect()

    run(scenario)
    assert last_activity(key) == idle_since
