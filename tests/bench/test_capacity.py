"""bench/capacity.py: its pose stand-in answers through pose_worker's own loop, its service times
follow the figures given, and its bulk-created patients are real sign-ins the live socket
accepts."""

import asyncio
import functools
import importlib.util
import random
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from channels.testing import WebsocketCommunicator

from rehab.asgi import application
from sessions.management.commands.pose_worker import serve_one
from sessions.pose_client import REQUEST_CHANNEL
from tests.sessions.test_live_consumer import run

ROOT = Path(__file__).resolve().parents[2]
ANSWER = {"pose": None, "tracking": {"next_box": None, "last_seen": None}, "identity": "enrolling"}


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("capacity", ROOT / "bench" / "capacity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ask(bench: Any, frame: bytes, service_ms: str) -> tuple[dict[str, Any], float]:
    """One request through pose_worker's serve_one with a stand-in knowing one frame: the
    reply and the seconds it took."""
    recording = bench.Recording([bench.frame_key(b"known frame")], [ANSWER], [1.0])
    server = bench.StandInServer(recording, bench.ServiceTime.parse(service_ms, [1.0]), seed=1)

    async def scenario() -> tuple[dict[str, Any], float]:
        layer = InMemoryChannelLayer()
        reply_to = await layer.new_channel()
        request = {"type": "pose.request", "id": 7, "reply_to": reply_to, "frame": frame,
                   "t": 0.0, "tracking": None, "expires": time.time() + 10}  # fmt: skip
        await layer.send(REQUEST_CHANNEL, request)
        started = time.perf_counter()
        await serve_one(layer, server, asyncio.Event())
        return await layer.receive(reply_to), time.perf_counter() - started

    return run(scenario)


def test_the_stand_in_answers_the_recorded_answer_after_its_service_time(bench: Any) -> None:
    reply, seconds = ask(bench, b"known frame", "40")
    assert reply == {"type": "pose.result", "id": 7, "answer": ANSWER}
    assert seconds >= 0.040


def test_a_frame_the_stand_in_never_saw_is_answered_as_failed(bench: Any) -> None:
    reply, _ = ask(bench, b"another frame", "1")
    assert reply["answer"]["error"] == "pose_failed"


def test_service_times_follow_the_p50_and_p95_given(bench: Any) -> None:
    service = bench.ServiceTime.parse("15,27", [])
    rng = random.Random(3)
    draws = [service.draw_ms(0, rng) for _ in range(20_000)]
    quantiles = statistics.quantiles(draws, n=100)
    assert quantiles[49] == pytest.approx(15, rel=0.03)
    assert quantiles[94] == pytest.approx(27, rel=0.03)
    assert statistics.fmean(draws) == pytest.approx(service.mean_ms(), rel=0.03)


def test_recorded_service_times_are_the_engines_own_per_frame(bench: Any) -> None:
    service = bench.ServiceTime.parse(None, [11.0, 22.0, 33.0])
    assert service.draw_ms(1, random.Random()) == 22.0
    assert service.mean_ms() == 22.0


@pytest.mark.django_db(transaction=True)
def test_bulk_created_patients_are_signed_in_and_their_sockets_are_ready(
    bench: Any, settings: Any
) -> None:
    settings.LIVE_STREAMS_PER_POSE_WORKER = 0  # no pose worker runs: no admission cap either
    clients = bench.create_patients_fast(3)
    assert len({session for session, _ in clients}) == 3

    async def ready(session_id: str, cookie: str) -> str:
        headers = [(b"origin", b"http://testserver"), (b"cookie", f"sessionid={cookie}".encode())]
        comm = WebsocketCommunicator(application, f"/ws/sessions/{session_id}/live/", headers)
        connected, _ = await comm.connect(timeout=10)
        message = await comm.receive_json_from(timeout=10) if connected else {"type": "-"}
        await comm.disconnect()
        return str(message["type"])

    for session_id, cookie in clients[1:]:  # the copies, not the one made by the services
        assert run(functools.partial(ready, session_id, cookie)) == "ready"
