"""The live session's consumer over the real ASGI application (origin validator, session-cookie
auth, routing), with real pose worker processes and real frames from a real squat video."""

import asyncio
import contextlib
import json
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import cv2
import kombu.exceptions
import numpy as np
import pytest
import redis.exceptions
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as settings_module
from django.core.management import CommandError, call_command
from django.test import Client

from analysis.tracker import SOMEONE_ELSE_MESSAGE
from rehab.asgi import application
from rehab.celery import app as celery_app
from sessions import protocol
from sessions.consumers import notify_session_ended
from sessions.models import ExerciseSession
from sessions.services import rep_record
from tests.conftest import World, rep_data
from tests.processes import production_workers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ORIGIN = b"http://testserver"

pytestmark = pytest.mark.django_db(transaction=True)
T = TypeVar("T")


@pytest.fixture(autouse=True)
def live_settings(settings: Any, eager_celery: None) -> None:
    # The local pose worker processes and Celery in-process, whatever the environment (the
    # production topology has its own test, with real `pose_worker` and Celery processes).
    settings.POSE_TRANSPORT = "local"


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a scenario on an event loop of its own thread: the browser tests' Playwright keeps a
    loop running in the main thread for the rest of the test session."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, scenario()).result()


def headers_of(user: Any, origin: bytes = ORIGIN) -> list[tuple[bytes, bytes]]:
    """The browser's handshake headers: its origin and, when logged in, the session cookie."""
    if user is None:
        return [(b"origin", origin)]
    client = Client()
    client.force_login(user)
    return browser_headers(client, origin)


def browser_headers(client: Client, origin: bytes = ORIGIN) -> list[tuple[bytes, bytes]]:
    """The handshake headers of the browser behind a signed-in test client."""
    cookie = client.cookies[settings_module.SESSION_COOKIE_NAME].value
    return [(b"origin", origin), (b"cookie", f"sessionid={cookie}".encode())]


def communicator(headers: list[tuple[bytes, bytes]], session: ExerciseSession) -> Any:
    return WebsocketCommunicator(application, f"/ws/sessions/{session.pk}/live/", headers)


async def receive_until(comm: Any, kind: str, timeout: float = 30) -> dict[str, Any]:
    while True:
        message = await comm.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


async def connect_ready(comm: Any) -> dict[str, Any]:
    connected, _ = await comm.connect(timeout=10)
    assert connected
    ready = await comm.receive_json_from(timeout=10)
    assert ready["type"] == "ready"
    return ready


def frame(sequence: int, image: bytes, capture_ms: float | None = None) -> bytes:
    return protocol.encode_frame(
        sequence, sequence * 66.7 if capture_ms is None else capture_ms, image
    )


async def assert_closed_with(comm: Any, code: int) -> None:
    while True:
        output = await comm.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            assert output.get("code") == code
            return


# --- Who may connect -----------------------------------------------------------------------------
@pytest.mark.parametrize("actor", ["anonymous", "therapist_a", "patient_q"])
def test_only_the_owning_patient_may_connect(world: World, actor: str) -> None:
    users = {
        "anonymous": None,
        "therapist_a": world.a.therapist.user,
        "patient_q": world.q.user,
    }

    headers = headers_of(users[actor])

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await comm.connect(timeout=10)
        await assert_closed_with(comm, protocol.CLOSE_NOT_ALLOWED)
        await comm.disconnect()

    run(scenario)


def test_a_completed_session_cannot_be_streamed(world: World) -> None:
    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.completed_session)
        await comm.connect(timeout=10)
        await assert_closed_with(comm, protocol.CLOSE_NOT_ALLOWED)

    run(scenario)


def test_a_foreign_origin_is_refused_at_the_handshake(world: World) -> None:
    headers = headers_of(world.p.user, origin=b"https://evil.example")

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        connected, _ = await comm.connect(timeout=10)
        assert not connected

    run(scenario)


def test_the_owner_gets_the_plan_and_where_to_resume(world: World) -> None:
    session = world.a.open_session
    for index in (1, 2, 3):  # the first set (3 reps) is full: the next connection starts set 2
        rep_record(session=session, data=rep_data(set_number=1, index=index, rom=80.0))

    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, session)
        ready = await connect_ready(comm)
        assert ready["plan"] == {
            "sets": 2,
            "reps": 3,
            "target_deg": 90.0,
            "hold_s": 0.0,
            "rest_s": 30.0,
            "turns": ["right"],
        }
        assert ready["segment"] == [24, 26, 28]  # right hip, knee, ankle
        assert ready["segments"] == {"left": [23, 25, 27], "right": [24, 26, 28]}
        assert ready["progress"] == {"set": 2, "reps": 0}
        await comm.disconnect()

    run(scenario)


# --- Bad input: an error answer, and the connection stays usable ---------------------------------
def _png() -> bytes:
    return cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))[1].tobytes()


def _jpeg_header_claiming(width: int, height: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes(9)
    return b"\xff\xd8" + sof + b"\xff\xda" + bytes(200)


BAD_FRAMES = {
    "empty image": (lambda jpeg: frame(1, b""), "empty"),
    "random bytes": (lambda jpeg: frame(1, np.random.default_rng(1).bytes(5000)), "unknown_format"),
    "random bytes, no header": (lambda jpeg: np.random.default_rng(2).bytes(5000), "bad_header"),
    "jpeg cut inside its header": (lambda jpeg: frame(1, jpeg[:100]), "truncated"),
    "jpeg cut half-way": (lambda jpeg: frame(1, jpeg[: len(jpeg) // 2]), "undecodable"),
    "png": (lambda jpeg: frame(1, _png()), "not_jpeg"),
    "30000x30000 header": (
        lambda jpeg: frame(1, _jpeg_header_claiming(30000, 30000)),
        "dimensions",
    ),
    "oversize": (lambda jpeg: frame(1, jpeg + bytes(protocol.MAX_MESSAGE_BYTES)), "too_large"),
}


@pytest.mark.parametrize("case", BAD_FRAMES)
def test_a_bad_frame_gets_an_error_and_the_next_good_frame_is_served(
    world: World, squat_frames: list[tuple[float, bytes]], case: str
) -> None:
    make, code = BAD_FRAMES[case]
    jpeg = squat_frames[0][1]
    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        await comm.send_to(bytes_data=make(jpeg))
        error = await comm.receive_json_from(timeout=10)
        assert error["type"] == "error" and error["code"] == code, error
        assert error["message"]
        await comm.send_to(bytes_data=frame(2, jpeg))
        pose = await receive_until(comm, "pose")
        assert pose["seq"] == 2 and len(pose["landmarks"]) == 33
        await comm.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    "text, code",
    [("hello", "bad_json"), ('{"type": "frame"}', "unknown_type"), ("[1, 2]", "unknown_type")],
)
def test_text_instead_of_a_frame_gets_an_error(world: World, text: str, code: str) -> None:
    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        await comm.send_to(text_data=text)
        error = await comm.receive_json_from(timeout=10)
        assert (error["type"], error["code"], error["seq"]) == ("error", code, None)
        await comm.disconnect()

    run(scenario)


def test_a_sequence_number_going_back_is_refused_and_the_stream_goes_on(
    world: World, squat_frames: list[tuple[float, bytes]]
) -> None:
    jpeg = squat_frames[0][1]
    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        await comm.send_to(bytes_data=frame(5, jpeg))
        assert (await receive_until(comm, "pose"))["seq"] == 5
        await comm.send_to(bytes_data=frame(3, jpeg))
        error = await comm.receive_json_from(timeout=10)
        assert (error["code"], error["seq"]) == ("sequence", 3)
        await comm.send_to(bytes_data=frame(6, jpeg))
        assert (await receive_until(comm, "pose"))["seq"] == 6
        await comm.disconnect()

    run(scenario)


def test_repeated_bad_frames_close_the_connection_as_abuse(world: World) -> None:
    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        for sequence in range(1, 30):
            await comm.send_to(bytes_data=frame(sequence, b"not an image"))
        await assert_closed_with(comm, protocol.CLOSE_ABUSE)

    run(scenario)


def test_a_flood_is_cut_to_the_rate_and_closed_as_abuse(
    world: World, squat_frames: list[tuple[float, bytes]]
) -> None:
    jpeg = squat_frames[0][1]
    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        for sequence in range(1, 300):
            await comm.send_to(bytes_data=frame(sequence, jpeg))
        codes = []
        while True:
            output = await comm.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                assert output["code"] == protocol.CLOSE_ABUSE
                break
            message = json.loads(output["text"])
            codes.append(message.get("code", message["type"]))
        assert "rate" in codes
        assert codes.count("pose") <= 1 + 2  # the slot: one frame processed, one waiting, ...

    run(scenario)


# --- Latest frame wins ---------------------------------------------------------------------------
def test_frames_arriving_while_one_is_served_replace_each_other_and_are_counted_dropped(
    world: World, squat_frames: list[tuple[float, bytes]]
) -> None:
    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        sent = 8  # within the burst: none refused for the rate
        for sequence, (capture_ms, jpeg) in enumerate(squat_frames[:sent], start=1):
            await comm.send_to(bytes_data=frame(sequence, jpeg, capture_ms))
        poses = [await receive_until(comm, "pose")]
        while poses[-1]["seq"] != sent:
            poses.append(await receive_until(comm, "pose"))
        assert len(poses) + poses[-1]["dropped"] == sent
        assert poses[-1]["dropped"] >= 1
        await comm.disconnect()

    run(scenario)


# --- A whole session -----------------------------------------------------------------------------
async def stream_session(
    comm: Any, frames: list[tuple[float, bytes]], on_frame: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    """Send every frame in lockstep with its answer (a pose, or an error), end the session and
    return everything the server said."""
    events: list[dict[str, Any]] = []
    await connect_ready(comm)
    for sequence, (capture_ms, jpeg) in enumerate(frames, start=1):
        if on_frame is not None:
            on_frame(sequence)
        await comm.send_to(bytes_data=frame(sequence, jpeg, capture_ms))
        while (message := await comm.receive_json_from(timeout=30))["type"] not in (
            "pose",
            "error",
        ):
            events.append(message)
        message["received_at"] = time.monotonic()  # for the fault tests' timings
        events.append(message)
    await comm.send_to(text_data=json.dumps({"type": "end"}))
    events.append(await receive_until(comm, "ended"))
    await assert_closed_with(comm, 1000)
    return events


def assert_two_squats_counted(events: list[dict[str, Any]], session: ExerciseSession) -> None:
    stages = [event["stage"] for event in events if event["type"] == "pose"]
    assert stages[0] == "placing" and "countdown" in stages and stages[-1] == "counting"
    reps = [event for event in events if event["type"] == "rep"]
    assert [(rep["set"], rep["index"]) for rep in reps] == [(1, 1), (1, 2)]
    assert all(60 < rep["rom"] < 140 for rep in reps)
    assert "1" in [event["text"] for event in events if event["type"] == "cue"]
    summary = events[-1]["summary"]
    assert summary["reps"] == 2
    assert summary["sets"] == [{"set": 1, "reps": 2}, {"set": 2, "reps": 0}]
    assert summary["report_url"].endswith(f"/sessions/{session.pk}/report/")
    session.refresh_from_db()
    assert session.status == ExerciseSession.Status.COMPLETED


def test_a_real_squat_video_is_counted_recorded_and_summarised(
    world: World, squat_frames: list[tuple[float, bytes]], settings: Any
) -> None:
    settings.LIVE_MAX_FRAMES_PER_S = 1000  # lockstep is faster than the page's 15 frames/s
    session = world.a.open_session
    headers = headers_of(world.p.user)

    async def scenario() -> list[dict[str, Any]]:
        return await stream_session(communicator(headers, session), squat_frames)

    events = run(scenario)
    assert_two_squats_counted(events, session)
    reps = [event for event in events if event["type"] == "rep"]
    rows = list(session.repetitions.order_by("index"))
    assert [round(row.rom_deg, 1) for row in rows] == [rep["rom"] for rep in reps]
    assert session.reps_counted == 2


def test_ending_on_the_way_up_from_a_squat_counts_it_once_it_came_half_way_back(
    world: World, squat_frames: list[tuple[float, bytes]], settings: Any
) -> None:
    # The second squat's bottom is at 17.3 s; by 17.9 s the knee is back from 113 to 53 deg.
    settings.LIVE_MAX_FRAMES_PER_S = 1000
    session = world.a.open_session
    headers = headers_of(world.p.user)
    cut = [(ms, jpeg) for ms, jpeg in squat_frames if ms < 17_900]

    async def scenario() -> list[dict[str, Any]]:
        return await stream_session(communicator(headers, session), cut)

    events = run(scenario)
    reps = [event for event in events if event["type"] == "rep"]
    assert [(rep["set"], rep["index"]) for rep in reps] == [(1, 1)]  # before the end
    assert events[-1]["summary"]["reps"] == 2
    assert [(row.set_number, row.index) for row in session.repetitions.order_by("index")] == [
        (1, 1),
        (1, 2),
    ]


def _someone_else_jpegs(count: int) -> list[bytes]:
    """Another person (the woman squatting in pose_squats.mp4), fitted into 640x480 as the
    page sends frames and the same size as the squat video's."""
    capture = cv2.VideoCapture(str(FIXTURES / "pose_squats.mp4"))
    jpegs = []
    for _ in range(count):
        ok, image = capture.read()
        assert ok
        small = cv2.resize(image, (270, 480), interpolation=cv2.INTER_AREA)
        jpegs.append(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes())
    capture.release()
    return jpegs


def test_someone_else_in_the_patients_place_pauses_counting_with_a_message_that_clears(
    world: World, squat_frames: list[tuple[float, bytes]], settings: Any
) -> None:
    """The patient alone, then someone else where they stood for a second and a half, then the
    patient again: the pose worker cannot tell the other person to be the patient, no landmarks
    go to the page, the page is told why counting is paused (and the voice says it once), and
    the message goes when the patient is back."""
    settings.LIVE_MAX_FRAMES_PER_S = 1000
    patient = squat_frames[:30]
    step_ms = patient[1][0] - patient[0][0]
    start_ms = patient[-1][0] + step_ms
    other = [(start_ms + i * step_ms, jpeg) for i, jpeg in enumerate(_someone_else_jpegs(23))]
    back = [(ms + 24 * step_ms, jpeg) for ms, jpeg in squat_frames[30:40]]
    headers = headers_of(world.p.user)

    async def scenario() -> list[dict[str, Any]]:
        comm = communicator(headers, world.a.open_session)
        return await stream_session(comm, patient + other + back)

    events = run(scenario)
    poses = [event for event in events if event["type"] == "pose"]
    assert [pose["seq"] for pose in poses] == list(range(1, 64))
    alone, someone_else, again = poses[:30], poses[30:53], poses[53:]
    assert {pose["identity"] for pose in alone[8:]} == {"confirmed"}
    assert all(pose["paused"] is None and pose["landmarks"] for pose in alone)
    assert {pose["identity"] for pose in someone_else} == {"uncertain"}
    assert all(pose["landmarks"] is None for pose in someone_else)
    paused = [pose["paused"] for pose in someone_else]
    assert paused[-1] == SOMEONE_ELSE_MESSAGE and paused[0] is None  # after half a second
    said = [event["text"] for event in events if event["type"] == "cue"]
    assert said.count(SOMEONE_ELSE_MESSAGE) == 1
    assert again[-1]["identity"] == "confirmed" and again[-1]["landmarks"]
    assert all(pose["paused"] is None for pose in again)


@pytest.mark.skipif(
    not settings_module.REDIS_URL
    or "postgres" not in settings_module.DATABASES["default"]["ENGINE"],
    reason="the production topology needs PostgreSQL and Redis (the CI's second run)",
)
def test_pose_workers_and_celery_in_their_own_processes_serve_a_session_and_survive_a_kill(
    world: World, squat_frames: list[tuple[float, bytes]], settings: Any
) -> None:
    """Two `manage.py pose_worker` processes through Redis, one killed -9 half-way while a frame
    is on its way (it may hold it); the other serves the stream within 2 s. Repetitions are
    recorded by a Celery worker process into PostgreSQL."""
    settings.POSE_TRANSPORT = "channels"
    settings.POSE_TIMEOUT_S = 1.0
    settings.LIVE_MAX_FRAMES_PER_S = 1000
    celery_app.conf.task_always_eager = False
    session = world.a.open_session
    headers = headers_of(world.p.user)
    killed_at: list[float] = []
    with production_workers(pose_workers=2) as workers:

        def kill() -> None:
            workers[0].process.kill()
            killed_at.append(time.monotonic())

        def kill_one_half_way(sequence: int) -> None:
            if sequence == len(squat_frames) // 2:
                threading.Timer(0.01, kill).start()  # just after this frame is sent

        async def scenario() -> list[dict[str, Any]]:
            comm = communicator(headers, session)
            return await stream_session(comm, squat_frames, kill_one_half_way)

        events = run(scenario)
        deadline = time.monotonic() + 20
        while session.repetitions.count() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert_two_squats_counted(events, session)
    timeouts = [event for event in events if event.get("code") == "pose_timeout"]
    assert len(timeouts) <= 1  # at most the frame the killed worker had taken
    served_again = min(
        e["received_at"] for e in events if e["type"] == "pose" and e["received_at"] > killed_at[0]
    )
    print(
        f"pose worker killed: the stream was served again {served_again - killed_at[0]:.2f} s later"
    )
    assert served_again - killed_at[0] <= 2.0
    assert session.repetitions.count() == 2
    session.refresh_from_db()
    assert session.reps_counted == 2


def test_ending_before_any_repetition_completes_the_session_with_an_empty_summary(
    world: World,
) -> None:
    session = world.a.open_session
    headers = headers_of(world.p.user)

    async def scenario() -> dict[str, Any]:
        comm = communicator(headers, session)
        await connect_ready(comm)
        await comm.send_to(text_data=json.dumps({"type": "end"}))
        await comm.send_to(text_data=json.dumps({"type": "end"}))  # a double click
        ended = await comm.receive_json_from(timeout=10)
        await assert_closed_with(comm, 1000)
        return ended

    ended = run(scenario)
    assert ended["type"] == "ended"
    assert ended["summary"]["reps"] == 0 and ended["summary"]["best_rom"] is None
    session.refresh_from_db()
    assert session.status == ExerciseSession.Status.COMPLETED


def test_a_session_ended_on_another_page_closes_its_live_connection(world: World) -> None:
    headers = headers_of(world.p.user)

    async def scenario() -> None:
        comm = communicator(headers, world.a.open_session)
        await connect_ready(comm)
        await sync_to_async(notify_session_ended)(world.a.open_session.pk)
        await assert_closed_with(comm, protocol.CLOSE_ENDED)

    run(scenario)


@pytest.mark.skipif(not settings_module.REDIS_URL, reason="the Redis channel layer only")
def test_an_idle_connection_outlives_the_redis_layers_blocking_poll() -> None:
    """redis-py 8 turns channels_redis' 5-second BZPOPMIN into a TimeoutError that kills every
    consumer idle for 5 s (pinned below 8 in pyproject)."""

    async def scenario() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 6.5)

    run(scenario)


def test_the_pose_worker_command_needs_redis(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("pose_worker")
    channel_layers.backends.clear()


def test_losing_redis_stores_the_counted_repetitions_and_closes_for_a_reconnect(
    world: World, squat_frames: list[tuple[float, bytes]], settings: Any, monkeypatch: Any
) -> None:
    """Redis goes away after the first repetition, with the broker unreachable too (its queue
    would be lost with it): the consumer stores that repetition itself, closes with 1013, and the
    page's next connection resumes at one repetition."""
    settings.LIVE_MAX_FRAMES_PER_S = 1000
    session = world.a.open_session
    headers = headers_of(world.p.user)
    counted = threading.Event()

    def broker_away(session: ExerciseSession, rep: Any) -> None:
        counted.set()
        raise kombu.exceptions.OperationalError("Error 111 connecting to redis:6379.")

    layer_class = type(get_channel_layer())
    layer_receive = layer_class.receive

    async def receive_until_redis_goes(layer: Any, channel: str) -> dict[str, Any]:
        while not counted.is_set():
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(layer_receive(layer, channel), 0.05)
        raise redis.exceptions.ConnectionError("Connection closed by server.")

    monkeypatch.setattr("sessions.consumers._queue_rep", broker_away)
    monkeypatch.setattr(layer_class, "receive", receive_until_redis_goes)

    async def scenario() -> dict[str, Any]:
        comm = communicator(headers, session)
        await connect_ready(comm)
        for sequence, (capture_ms, jpeg) in enumerate(squat_frames, start=1):
            await comm.send_to(bytes_data=frame(sequence, jpeg, capture_ms))
            while (output := await comm.receive_output(timeout=30))["type"] != "websocket.close":
                if json.loads(output["text"])["type"] in ("pose", "error"):
                    break
            else:
                assert output.get("code") == protocol.CLOSE_TRY_AGAIN
                break
        else:
            raise AssertionError("the connection stayed open although Redis was gone")
        monkeypatch.undo()  # Redis is back
        again = communicator(headers, session)
        ready = await connect_ready(again)
        await again.disconnect()
        return ready

    ready = run(scenario)
    assert counted.is_set()
    assert list(session.repetitions.values_list("set_number", "index")) == [(1, 1)]
    assert ready["progress"] == {"set": 1, "reps": 1}
    session.refresh_from_db()
    assert session.status == ExerciseSession.Status.IN_PROGRESS
