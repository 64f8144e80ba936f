"""Capacity of the live path with thousands of sockets: the real web tier and channel layer, pose
answered by stand-ins that take as long as the real engine.

    .venv/bin/python bench/capacity.py                     # the short run, about 3 minutes
    .venv/bin/python bench/capacity.py --steps 500x2,1000x1,2000x0.5,4000x0.25 --seconds 60

It starts on this machine a private Redis (redis-server on a free port, nothing saved; `--redis URL`
uses another), daphne serving rehab.asgi with POSE_TRANSPORT=channels, and a fresh SQLite
database in a temporary folder with one patient, one open session and one signed-in browser
session per socket: the first through the services (bench/live_load.py create_patients), the
others bulk-created as copies of its rows.

Pose is answered by `--stand-ins` processes, one modelled pose core each. Each runs the loop of
`manage.py pose_worker` itself (sessions/management/commands/pose_worker.py `serve`: it reads
`pose-requests`, skips expired requests, answers to the consumer's channel) with the engine
replaced by a stand-in: it holds the request for a service time, blocking its process as the
engine does, and answers with the real engine's answer to that frame, recorded before the run
(PoseEngine in this process, one stream over the whole video), so the consumer and the tracker do
their real work. The service time is the time the engine took on that frame while recording, or
`--service-ms 15.7` (fixed) or `--service-ms 12,27` (the p50,p95 of a lognormal). A stand-in
sleeps: the run measures the web tier, the channel layer and Redis, not the pose cores, whose
capacity is the per-core figure, 1000 / mean service ms frames/s.

Each step SOCKETSxFPS connects that many sockets, split over `--generators` processes of asyncio
`websockets` clients; they sit idle for `--idle-seconds` (what a socket costs without frames: its
access check every LIVE_ACCESS_CHECK_S), stream the video for `--seconds` at FPS frames/s each
(the page's rule: at most two frames unanswered, a tick with two outstanding is skipped), and
close.

Printed per step: frames/s offered and served, round trip p50/p95, errors by code (pose_busy:
the request channel was full; no answer within POSE_TIMEOUT_S comes as pose_unreachable, since
sessions/pose_client.py catches REDIS_AWAY, which holds OSError, before TimeoutError), failed
connections, CPU % of daphne, Redis, the stand-ins, the generators and the whole machine, daphne's
RSS, Redis commands/s and MB/s in and out (INFO), and the first resource near its limit. Then the
costs derived from the steps (medians): web CPU per idle socket and per frame, memory per socket,
Redis CPU and bytes per frame; and what 10,000 streams at 10 and 15 frames/s need with every
process planned at UTILISATION of a core, ending on the summary line.
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess  # nosec B404 # starts redis-server and this virtualenv's daphne, no shell
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, cast

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_load import (  # noqa: E402 # bench/ is not a package: its folder goes on the path first
    BIN,
    FPS,
    MAX_IN_FLIGHT,
    ROOT,
    configure,
    free_port,
    load_frames,
    percentile,
    rss_mb,
)

from analysis.pose.types import PoseAnswer, TrackingWire  # noqa: E402
from analysis.pose.worker import FrameServer  # noqa: E402

TARGET_STREAMS = 10_000
PLAN_RATES = (10, 15)  # frames/s per stream: the page's adaptive lower rate, and its full rate
UTILISATION = 0.7  # of a core or a Redis shard: headroom for bursts and reconnection storms
SATURATED = 0.9  # a step serving less than this share of the frames offered is saturated
BUSY_PCT = 85  # a single-threaded process above this CPU % is at its limit
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FAILED: PoseAnswer = {"error": "pose_failed", "message": "The stand-in does not know this frame."}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=parse_steps, default=parse_steps("100x1,250x1,1000x0.25"),
                        help="SOCKETSxFPS,... (default 100x1,250x1,1000x0.25)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20, help="streaming per step")
    parser.add_argument("--idle-seconds", type=float, default=6, help="connected, no frames")
    parser.add_argument("--stand-ins", type=int, default=8, help="modelled pose cores")
    parser.add_argument("--service-ms", help="P50 or P50,P95 (default: the engine's own times)")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--video", type=Path, default=ROOT / "tests/fixtures/squat_side_rohanx01.mp4"
    )
    parser.add_argument("--redis", help="use this Redis instead of a private redis-server")
    return parser.parse_args()


@dataclass(frozen=True)
class Step:
    sockets: int
    fps: float

    def __str__(self) -> str:
        return f"{self.sockets}x{self.fps:g}"


def parse_steps(text: str) -> list[Step]:
    try:
        steps = [Step(int(s), float(f)) for s, f in (p.split("x") for p in text.split(","))]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"steps are SOCKETSxFPS,...: {text!r}") from error
    if any(step.sockets < 1 or not 0 < step.fps <= FPS for step in steps):
        raise argparse.ArgumentTypeError(f"sockets >= 1 and 0 < fps <= {FPS}: {text!r}")
    return steps


# --- The pose stand-in ---------------------------------------------------------------------------
def frame_key(frame: bytes) -> str:
    return hashlib.blake2b(frame, digest_size=16).hexdigest()


@dataclass
class Recording:
    """The real engine's answer to each frame of the video, and how long it took (ms)."""

    keys: list[str]
    answers: list[PoseAnswer]
    engine_ms: list[float]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(vars(self)))

    @classmethod
    def load(cls, path: Path) -> "Recording":
        return cls(**json.loads(path.read_text()))


def record_answers(frames: list[bytes], warm_up: int = 10) -> Recording:
    """One stream over the video through a pose worker's FrameServer, timed frame by frame."""
    server = FrameServer()
    tracking: TrackingWire | None = None
    for n, frame in enumerate(frames[:warm_up]):
        tracking = server.serve(frame, n / FPS, tracking).get("tracking")
    answers, engine_ms = [], []
    for n, frame in enumerate(frames, start=warm_up):
        started = time.perf_counter()
        answer = server.serve(frame, n / FPS, tracking)
        engine_ms.append((time.perf_counter() - started) * 1000)
        answers.append(answer)
        tracking = answer.get("tracking", tracking)
    return Recording([frame_key(frame) for frame in frames], answers, engine_ms)


@dataclass(frozen=True)
class ServiceTime:
    """How long a modelled pose core holds a frame: the engine's recorded time for that frame,
    or a fixed time, or a lognormal through a p50 and a p95 (ms)."""

    recorded_ms: tuple[float, ...]
    p50_ms: float | None = None
    p95_ms: float | None = None

    @classmethod
    def parse(cls, spec: str | None, recorded_ms: list[float]) -> "ServiceTime":
        if spec is None:
            return cls(tuple(recorded_ms))
        p50, _, p95 = spec.partition(",")
        return cls(tuple(recorded_ms), float(p50), float(p95 or p50))

    @property
    def sigma(self) -> float:
        assert self.p50_ms is not None and self.p95_ms is not None  # nosec B101 # narrows types
        return math.log(self.p95_ms / self.p50_ms) / 1.645  # z of the 95th percentile

    def draw_ms(self, index: int, rng: random.Random) -> float:
        if self.p50_ms is None:
            return self.recorded_ms[index]
        return rng.lognormvariate(math.log(self.p50_ms), self.sigma)

    def mean_ms(self) -> float:
        if self.p50_ms is None:
            return statistics.fmean(self.recorded_ms)
        return self.p50_ms * math.exp(self.sigma**2 / 2)

    def describe(self) -> str:
        if self.p50_ms is None:
            ms = list(self.recorded_ms)
            return (f"the engine's own times on this machine: p50 {percentile(ms, 50):.1f}, "
                    f"p95 {percentile(ms, 95):.1f}, mean {self.mean_ms():.1f} ms")  # fmt: skip
        return f"lognormal p50 {self.p50_ms:g}, p95 {self.p95_ms:g}, mean {self.mean_ms():.1f} ms"


class StandInServer(FrameServer):
    """A pose worker's FrameServer without an engine: the recorded answer to the frame, after
    blocking its process for the frame's service time as the engine would."""

    def __init__(self, recording: Recording, service: ServiceTime, seed: int) -> None:
        # No super().__init__(): there is no engine to load; `serve` is all the loop calls.
        self.recording = recording
        self.index = {key: n for n, key in enumerate(recording.keys)}
        self.service = service
        self.rng = random.Random(seed)  # nosec B311 # service times of a simulation

    def serve(self, frame: bytes, timestamp_s: float, tracking: TrackingWire | None) -> PoseAnswer:
        index = self.index.get(frame_key(frame))
        if index is None:
            return FAILED
        time.sleep(self.service.draw_ms(index, self.rng) / 1000)
        return self.recording.answers[index]


def stand_in_main(recording_path: Path, service: ServiceTime, seed: int, crashes: Any) -> None:
    """A stand-in process: pose_worker's own loop on the channel layer, with a StandInServer."""
    import django

    django.setup()
    from channels.exceptions import ChannelFull
    from channels.layers import get_channel_layer

    from sessions.management.commands.pose_worker import serve

    server = StandInServer(Recording.load(recording_path), service, seed)
    while True:
        try:
            asyncio.run(serve(get_channel_layer(), server))
            return  # stopped (SIGTERM)
        except ChannelFull:
            # pose_worker drops a reply its web process has no room for; a ChannelFull that
            # still escapes its loop would end a real worker. Counted (it should stay 0), and the
            # loop starts again at once, as a supervisor would restart the worker.
            with crashes.get_lock():
                crashes.value += 1


# --- Set-up: Redis, daphne, patients -------------------------------------------------------------
def start_redis() -> tuple[str, subprocess.Popen[bytes]]:
    """A private redis-server: its CPU and INFO counters are this run's alone."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: pass --redis URL")
    port = free_port()
    process = subprocess.Popen(  # nosec B603 # redis-server from PATH, fixed arguments, no shell
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: redis.Redis.from_url(url).ping())
    return url, process


def start_daphne(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    # This virtualenv's own daphne, fixed arguments, no shell.
    with log.open("wb") as output:
        process = subprocess.Popen(  # nosec B603 # see the line above
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "rehab.asgi:application"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: socket_open(port), seconds=120)
    except OSError:
        raise SystemExit(f"daphne did not start:\n{log.read_text()[-3000:]}") from None
    return process


def socket_open(port: int) -> bool:
    import socket

    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


def wait_for(ready: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except (OSError, redis.ConnectionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def create_patients_fast(count: int) -> list[tuple[str, str]]:
    """(session id, session cookie) per socket. The first patient goes through the services
    (live_load.create_patients); the others are bulk-created copies of its rows (user, patient,
    assignment, open session, signed-in browser session): thousands in seconds."""
    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils.crypto import get_random_string
    from live_load import create_patients

    from sessions.models import ExerciseSession

    [(session_id, cookie)] = create_patients(1)
    session = ExerciseSession.objects.select_related("patient__user").get(pk=session_id)
    patient, user = session.patient, session.patient.user
    login = Session.objects.get(session_key=cookie)
    signed_in = login.get_decoded()
    clients = [(session_id, cookie)]
    with transaction.atomic():
        users = get_user_model().objects.bulk_create(
            copies(
                user,
                [
                    {
                        "username": f"copy{n}@example.org",
                        "email": f"copy{n}@example.org",
                        "password": make_password(None),
                    }
                    for n in range(1, count)
                ],
            )  # fmt: skip
        )
        patients = type(patient).objects.bulk_create(
            copies(patient, [{"user_id": u.pk} for u in users])
        )
        assignment = patient.assignments.get()
        type(assignment).objects.bulk_create(
            copies(assignment, [{"patient_id": p.pk} for p in patients])
        )
        sessions = ExerciseSession.objects.bulk_create(
            copies(session, [{"patient_id": p.pk} for p in patients])
        )
        logins = [
            Session(
                session_key=get_random_string(32, VALID_KEY_CHARS),
                session_data=SessionStore().encode(
                    {
                        **signed_in,
                        SESSION_KEY: str(u.pk),
                        HASH_SESSION_KEY: u.get_session_auth_hash(),
                    }
                ),
                expire_date=login.expire_date,
            )
            for u in users
        ]
        Session.objects.bulk_create(logins)
    clients += [(str(s.pk), login.session_key) for s, login in zip(sessions, logins, strict=True)]
    return clients


def copies(template: Any, changes: list[dict[str, Any]]) -> list[Any]:
    """Unsaved copies of a model instance, each with its changes and a fresh primary key."""
    fields = {
        f.attname: getattr(template, f.attname)
        for f in template._meta.concrete_fields
        if not f.primary_key
    }
    return [type(template)(**{**fields, **change}) for change in changes]


# --- Load generators -----------------------------------------------------------------------------
@dataclass
class Traffic:
    """What the sockets of one step saw; merged over the generator processes."""

    connected: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # connections that failed, by reason
    ticks: int = 0  # frames the page would have offered
    sent: int = 0
    skipped: int = 0  # ticks with two frames unanswered
    round_trips_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # error messages, by code

    def merge(self, other: "Traffic") -> None:
        for name in ("connected", "ticks", "sent", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.refused.update(other.refused)
        self.errors.update(other.errors)
        self.round_trips_ms += other.round_trips_ms


def generator_main(
    url: str,
    clients: list[tuple[str, str]],
    frames: list[bytes],
    step: Step,
    seconds: float,
    seed: int,
    connected: Any,
    go: Event,
    results: Any,
) -> None:
    """A generator process: connect its sockets, say so, wait for `go`, stream, report."""
    import django

    django.setup()
    results.put(asyncio.run(generate(url, clients, frames, step, seconds, seed, connected, go)))


async def generate(
    url: str,
    clients: list[tuple[str, str]],
    frames: list[bytes],
    step: Step,
    seconds: float,
    seed: int,
    connected: Any,
    go: Event,
) -> Traffic:
    traffic = Traffic()
    gate = asyncio.Semaphore(32)  # handshakes at once: a burst of thousands is a different test
    opened = await asyncio.gather(*(open_socket(url, *client, gate) for client in clients))
    sockets = [s for s in opened if not isinstance(s, str)]
    traffic.connected = len(sockets)
    traffic.refused.update(s for s in opened if isinstance(s, str))
    connected.put(len(sockets))
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    rng = random.Random(seed)  # nosec B311 # the sockets' phases in a simulation
    # Each socket starts at a random phase of its period: the frames arrive spread out, as
    # thousands of independent pages' do.
    streams = [
        stream(socket_, frames, step.fps, seconds, rng.random() / step.fps, traffic)
        for socket_ in sockets
    ]
    await asyncio.gather(*streams)
    await asyncio.gather(*(socket_.close() for socket_ in sockets))
    return traffic


async def open_socket(url: str, session_id: str, cookie: str, gate: asyncio.Semaphore) -> Any:
    """An open socket that said ready, or why not (a string)."""
    import websockets

    headers = {"Cookie": f"sessionid={cookie}", "Origin": url.replace("ws://", "http://")}
    async with gate:
        try:
            socket_ = await websockets.connect(
                f"{url}/ws/sessions/{session_id}/live/", additional_headers=headers,
                max_size=2**22, compression=None, ping_interval=None, open_timeout=60,
            )  # fmt: skip
            ready = json.loads(await asyncio.wait_for(socket_.recv(), 60))
        except websockets.ConnectionClosed as closed:
            return f"closed {closed.rcvd.code if closed.rcvd else '-'}"
        except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
            return type(error).__name__
    return socket_ if ready["type"] == "ready" else f"said {ready['type']}"


async def stream(
    socket_: Any, frames: list[bytes], fps: float, seconds: float, phase_s: float, into: Traffic
) -> None:
    """Send the video's frames in order at `fps` for `seconds`, as the page does."""
    import websockets

    from sessions.protocol import encode_frame

    sent_at: dict[int, float] = {}

    async def receive() -> None:
        async for text in socket_:
            message = json.loads(text)
            if message["type"] == "error":
                into.errors[message["code"]] += 1
            elif message["type"] == "pose" and message["seq"] in sent_at:
                into.round_trips_ms.append((time.perf_counter() - sent_at[message["seq"]]) * 1000)
            if message["type"] in ("pose", "error"):
                for older in [s for s in sent_at if s <= (message["seq"] or 0)]:
                    del sent_at[older]

    receiving = asyncio.create_task(receive())
    started = time.perf_counter() + phase_s
    ticks = sequence = 0
    with contextlib.suppress(websockets.ConnectionClosed):
        while (tick := started + ticks / fps) < started + seconds:
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            ticks += 1
            if len(sent_at) >= MAX_IN_FLIGHT:
                into.skipped += 1
                continue
            sequence += 1
            capture_ms = (time.perf_counter() - started) * 1000
            sent_at[sequence] = time.perf_counter()
            frame = frames[sequence % len(frames)]
            await socket_.send(encode_frame(sequence, capture_ms, frame))
            into.sent += 1
        await asyncio.sleep(1.5)  # the last answers (POSE_TIMEOUT_S is 1 s)
    into.ticks += ticks
    receiving.cancel()


# --- Measuring the servers -----------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (0 once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all processes, other users' too)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass(frozen=True)
class Sample:
    at: float
    cpu: dict[str, float]  # process group -> CPU seconds
    daphne_rss_mb: float
    redis_commands: int
    redis_in_bytes: int
    redis_out_bytes: int
    stand_in_crashes: int


class Probe:
    """Samples of the servers' counters: CPU of each process group, daphne's RSS, Redis INFO."""

    def __init__(self, redis_url: str, daphne: int, stand_ins: list[int], crashes: Any) -> None:
        self.redis = redis.Redis.from_url(redis_url)
        self.crashes = crashes  # stand-in restarts after ChannelFull, a shared counter
        self.groups: dict[str, list[int]] = {"daphne": [daphne], "stand-ins": stand_ins}
        self.daphne = daphne

    def sample(self) -> Sample:
        info = cast(dict[str, Any], self.redis.info("all"))  # the synchronous client's dict
        cpu = {name: sum(map(cpu_s, pids)) for name, pids in self.groups.items()}
        cpu["redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        cpu["machine"] = machine_busy_s()
        return Sample(
            time.monotonic(), cpu, rss_mb(self.daphne), int(info["total_commands_processed"]),
            int(info["total_net_input_bytes"]), int(info["total_net_output_bytes"]),
            self.crashes.value,
        )  # fmt: skip

    @contextlib.contextmanager
    def generators(self, pids: list[int]) -> Iterator[None]:
        self.groups["generators"] = pids
        try:
            yield
        finally:
            del self.groups["generators"]


@dataclass(frozen=True)
class Window:
    """The servers between two samples."""

    start: Sample
    end: Sample

    @property
    def seconds(self) -> float:
        return self.end.at - self.start.at

    def cpu_s(self, group: str) -> float:
        return self.end.cpu.get(group, 0.0) - self.start.cpu.get(group, 0.0)

    def cpu_pct(self, group: str) -> float:
        return 100 * self.cpu_s(group) / self.seconds

    def redis_per_s(self) -> tuple[float, float, float]:
        """Commands/s, MB/s in, MB/s out."""
        s, e = self.start, self.end
        return ((e.redis_commands - s.redis_commands) / self.seconds,
                (e.redis_in_bytes - s.redis_in_bytes) / self.seconds / 2**20,
                (e.redis_out_bytes - s.redis_out_bytes) / self.seconds / 2**20)  # fmt: skip


# --- One step ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepResult:
    step: Step
    generators: int
    traffic: Traffic
    idle: Window
    streaming: Window
    pose_cores: int
    service_mean_ms: float

    @property
    def offered_per_s(self) -> float:
        return self.traffic.ticks / self.streaming.seconds

    @property
    def served(self) -> int:
        return len(self.traffic.round_trips_ms)

    @property
    def served_per_s(self) -> float:
        return self.served / self.streaming.seconds

    def busy_pct(self) -> dict[str, float]:
        """How near its limit each part ran: % of one core for the single-threaded processes,
        of all cores for the machine, of their capacity for the modelled pose cores."""
        window = self.streaming
        pose_s = self.served * self.service_mean_ms / 1000
        return {
            "daphne": window.cpu_pct("daphne"),
            "redis": window.cpu_pct("redis"),
            "pose cores": 100 * pose_s / (self.pose_cores * window.seconds),
            "generators": window.cpu_pct("generators") / self.generators,
            "machine": window.cpu_pct("machine") / (os.cpu_count() or 1),
        }

    def limit(self) -> str:
        busiest = max(self.busy_pct().items(), key=lambda item: item[1])
        saturated = self.served_per_s < SATURATED * self.offered_per_s
        if busiest[1] >= BUSY_PCT:
            return f"{busiest[0]} {busiest[1]:.0f}%" + (" (saturated)" if saturated else "")
        return "saturated, no part busy" if saturated else "-"


def run_step(
    step: Step,
    clients: list[tuple[str, str]],
    frames: list[bytes],
    args: argparse.Namespace,
    url: str,
    probe: Probe,
    service: ServiceTime,
) -> StepResult:
    """Connect the step's sockets, measure them idle, then streaming."""
    spawn = multiprocessing.get_context("spawn")
    connected, results, go = spawn.Queue(), spawn.Queue(), spawn.Event()
    mine = clients[: step.sockets]
    chunks = [mine[n :: args.generators] for n in range(args.generators)]
    generators = [
        spawn.Process(
            target=generator_main,
            args=(url, chunk, frames, step, args.seconds, n, connected, go, results),
        )
        for n, chunk in enumerate(chunks)
    ]
    for generator in generators:
        generator.start()
    try:
        for _ in generators:
            connected.get(timeout=600)
        with probe.generators([g.pid for g in generators if g.pid is not None]):
            time.sleep(1)  # the last handshakes' own work
            idle_start = probe.sample()
            time.sleep(args.idle_seconds)
            idle = Window(idle_start, probe.sample())
            go.set()
            streaming_start = probe.sample()
            time.sleep(args.seconds)
            streaming = Window(streaming_start, probe.sample())
        traffic = Traffic()
        for _ in generators:
            traffic.merge(results.get(timeout=args.seconds + 120))
    finally:
        for generator in generators:
            generator.join(timeout=30)
            if generator.is_alive():
                generator.kill()
    time.sleep(2)  # daphne closes the step's sockets before the next one connects
    return StepResult(
        step, args.generators, traffic, idle, streaming, args.stand_ins, service.mean_ms()
    )


# --- Costs and the plan --------------------------------------------------------------------------
@dataclass(frozen=True)
class Costs:
    """Per socket and per frame, medians over the steps (CPU in core-seconds)."""

    web_socket_cpu: float  # per socket-second, idle
    web_frame_cpu_s: float
    redis_socket_cpu: float
    redis_frame_cpu_s: float
    redis_frame_bytes: float  # in + out
    socket_mb: float
    process_mb: float  # daphne before any socket
    frame_bytes: float

    @classmethod
    def of(cls, results: list[StepResult], baseline: Sample, frames: list[bytes]) -> "Costs":
        measured = [r for r in results if r.served]
        if not measured:
            raise SystemExit("no frame was served: nothing to derive")

        def per_socket(r: StepResult, group: str) -> float:
            return r.idle.cpu_s(group) / (r.idle.seconds * r.traffic.connected)

        def per_frame(r: StepResult, group: str) -> float:
            idle = per_socket(r, group) * r.traffic.connected * r.streaming.seconds
            return max(0.0, r.streaming.cpu_s(group) - idle) / r.served

        def redis_bytes(r: StepResult) -> float:
            s, e = r.streaming.start, r.streaming.end
            moved = e.redis_in_bytes - s.redis_in_bytes + e.redis_out_bytes - s.redis_out_bytes
            return moved / r.served

        largest = max(measured, key=lambda r: r.traffic.connected)
        return cls(
            web_socket_cpu=statistics.median(per_socket(r, "daphne") for r in measured),
            web_frame_cpu_s=statistics.median(per_frame(r, "daphne") for r in measured),
            redis_socket_cpu=statistics.median(per_socket(r, "redis") for r in measured),
            redis_frame_cpu_s=statistics.median(per_frame(r, "redis") for r in measured),
            redis_frame_bytes=statistics.median(redis_bytes(r) for r in measured),
            socket_mb=(largest.streaming.end.daphne_rss_mb - baseline.daphne_rss_mb)
            / largest.traffic.connected,
            process_mb=baseline.daphne_rss_mb,
            frame_bytes=statistics.fmean(map(len, frames)),
        )


@dataclass(frozen=True)
class Plan:
    rate: int
    pose_cores: int
    web_processes: int
    web_gb: float
    redis_shards: int
    ingress_gbit_s: float
    redis_gbit_s: float


def plan_for(rate: int, costs: Costs, service_mean_ms: float) -> Plan:
    """What TARGET_STREAMS streams at `rate` frames/s need, each process at UTILISATION."""
    streams, frames_per_s = TARGET_STREAMS, TARGET_STREAMS * rate
    web_cores = streams * (costs.web_socket_cpu + rate * costs.web_frame_cpu_s)
    redis_cores = streams * (costs.redis_socket_cpu + rate * costs.redis_frame_cpu_s)
    web_processes = math.ceil(web_cores / UTILISATION)  # daphne: one event loop, one core
    return Plan(
        rate=rate,
        pose_cores=math.ceil(frames_per_s * service_mean_ms / 1000 / UTILISATION),
        web_processes=web_processes,
        web_gb=(streams * costs.socket_mb + web_processes * costs.process_mb) / 1024,
        redis_shards=math.ceil(redis_cores / UTILISATION),
        ingress_gbit_s=frames_per_s * costs.frame_bytes * 8 / 1e9,
        redis_gbit_s=frames_per_s * costs.redis_frame_bytes * 8 / 1e9,
    )


# --- Report --------------------------------------------------------------------------------------
def print_step(result: StepResult) -> None:
    traffic, window, busy = result.traffic, result.streaming, result.busy_pct()
    commands, mb_in, mb_out = window.redis_per_s()
    rtt = traffic.round_trips_ms
    errors = ", ".join(f"{code} {n}" for code, n in traffic.errors.most_common()) or "none"
    refused = ", ".join(f"{why} {n}" for why, n in traffic.refused.most_common()) or "none"
    print(
        f"\nstep {result.step}: {traffic.connected} sockets connected (refused: {refused}), "
        f"{result.step.fps:g} frames/s each\n"
        f"  frames/s offered {result.offered_per_s:.1f}, sent {traffic.sent / window.seconds:.1f}, "
        f"served {result.served_per_s:.1f}; ticks skipped (2 unanswered) {traffic.skipped}\n"
        f"  round trip p50 {percentile(rtt, 50):.1f} ms, p95 {percentile(rtt, 95):.1f} ms; "
        f"errors: {errors}\n"
        f"  CPU % idle -> streaming: daphne {result.idle.cpu_pct('daphne'):.0f} -> "
        f"{busy['daphne']:.0f}, Redis {result.idle.cpu_pct('redis'):.0f} -> {busy['redis']:.0f}, "
        f"stand-ins {window.cpu_pct('stand-ins'):.0f}, "
        f"generators {window.cpu_pct('generators'):.0f}, "
        f"machine {window.cpu_pct('machine'):.0f} of {100 * (os.cpu_count() or 1)}\n"
        f"  daphne RSS {window.end.daphne_rss_mb:.0f} MB; Redis {commands:.0f} commands/s, "
        f"{mb_in:.1f} MB/s in, {mb_out:.1f} MB/s out; pose cores busy {busy['pose cores']:.0f}%\n"
        f"  stand-ins ended by a ChannelFull (should stay 0): "
        f"{window.end.stand_in_crashes - result.idle.start.stand_in_crashes}\n"
        f"  at its limit: {result.limit()}"
    )  # fmt: skip


def print_log_tail(log: Path, lines: int = 6) -> None:
    """daphne's warnings and errors (LOG_LEVEL=WARNING): what went wrong in the web tier."""
    text = log.read_text(errors="replace").splitlines()
    if text:
        print(f"\ndaphne's log, {len(text)} lines; the last {lines}:", *text[-lines:], sep="\n  ")


def print_costs(costs: Costs) -> None:
    print(
        f"\ncosts (medians over the steps; CPU of daphne and Redis on this machine)\n"
        f"  web:   {costs.web_socket_cpu * 1e6:.0f} us CPU per idle socket per s, "
        f"{costs.web_frame_cpu_s * 1000:.2f} ms CPU per frame, "
        f"{costs.socket_mb * 1024:.0f} kB per socket ({costs.process_mb:.0f} MB before any)\n"
        f"  Redis: {costs.redis_socket_cpu * 1e6:.0f} us CPU per idle socket per s, "
        f"{costs.redis_frame_cpu_s * 1000:.3f} ms CPU per frame, "
        f"{costs.redis_frame_bytes / 1024:.0f} kB in+out per frame "
        f"(the JPEG: {costs.frame_bytes / 1024:.0f} kB)"
    )  # fmt: skip


def print_plan(plan: Plan) -> None:
    print(
        f"\n{TARGET_STREAMS:,} streams at {plan.rate} frames/s (each part at "
        f"{UTILISATION:.0%} of a core): {plan.pose_cores} pose cores, {plan.web_processes} web "
        f"processes ({plan.web_gb:.1f} GB), {plan.redis_shards} Redis shards; network "
        f"{plan.ingress_gbit_s:.1f} Gbit/s of frames into the web tier, "
        f"{plan.redis_gbit_s:.1f} Gbit/s through Redis"
    )  # fmt: skip


def summary(costs: Costs, plan: Plan) -> str:
    return (
        f"web process: {1 / costs.web_frame_cpu_s:.0f} frames/s per core, "
        f"{1024 / costs.socket_mb:.0f} sockets per GB; "
        f"Redis: {1 / max(costs.redis_frame_cpu_s, 1e-9):.0f} frames/s per shard; "
        f"{TARGET_STREAMS:,} streams at {plan.rate} fps need {plan.pose_cores} pose cores, "
        f"{plan.web_processes} web processes, {plan.redis_shards} Redis shards"
    )


# --- The run -------------------------------------------------------------------------------------
def start_stand_ins(recording: Path, service: ServiceTime, count: int, crashes: Any) -> list[Any]:
    spawn = multiprocessing.get_context("spawn")
    stand_ins = [
        spawn.Process(target=stand_in_main, args=(recording, service, n, crashes), daemon=True)
        for n in range(count)
    ]
    for stand_in in stand_ins:
        stand_in.start()
    return stand_ins


def stop(process: Any) -> None:
    """SIGTERM (pose_worker's loop and daphne stop cleanly on it), then SIGKILL after 20 s."""
    process.terminate()
    try:
        if isinstance(process, subprocess.Popen):
            process.wait(timeout=20)
        else:
            process.join(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    if not isinstance(process, subprocess.Popen) and process.is_alive():
        process.kill()


def main() -> None:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr] # a TextIOWrapper
    with tempfile.TemporaryDirectory(prefix="capacity-") as var_dir, contextlib.ExitStack() as up:
        if args.redis:
            redis_url = args.redis
            redis.Redis.from_url(redis_url).flushdb()
        else:
            redis_url, redis_server = start_redis()
            up.callback(stop, redis_server)
        env = configure(redis_url, Path(var_dir))
        # No admission cap (sessions.socket_cap.live_capacity): it would refuse the thousands of
        # sockets whose cost this run measures beyond what the few modelled pose cores admit.
        env["LIVE_STREAMS_PER_POSE_WORKER"] = os.environ["LIVE_STREAMS_PER_POSE_WORKER"] = "0"
        import django

        django.setup()
        started = time.perf_counter()
        clients = create_patients_fast(max(step.sockets for step in args.steps))
        print(f"{len(clients)} patients with an open session and a sign-in in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        frames = load_frames(args.video)
        recording = record_answers(frames)
        answers = Path(var_dir) / "answers.json"
        recording.save(answers)
        service = ServiceTime.parse(args.service_ms, recording.engine_ms)
        print(f"{len(frames)} frames of {args.video.name}, "
              f"{statistics.fmean(map(len, frames)) / 1024:.0f} kB per JPEG; service time: "
              f"{service.describe()}; {args.stand_ins} stand-ins serve up to "
              f"{args.stand_ins * 1000 / service.mean_ms():.0f} frames/s")  # fmt: skip
        port = free_port()
        daphne = start_daphne(env, port, Path(var_dir) / "daphne.log")
        up.callback(stop, daphne)
        crashes = multiprocessing.get_context("spawn").Value("i", 0)
        stand_ins = start_stand_ins(answers, service, args.stand_ins, crashes)
        for stand_in in stand_ins:
            up.callback(stop, stand_in)
        time.sleep(10)  # the stand-ins import Django and the pose modules (not loaded)
        probe = Probe(redis_url, daphne.pid, [s.pid for s in stand_ins], crashes)
        baseline = probe.sample()
        results = []
        for step in args.steps:
            results.append(
                run_step(step, clients, frames, args, f"ws://127.0.0.1:{port}", probe, service)
            )
            print_step(results[-1])
        print_log_tail(Path(var_dir) / "daphne.log")
    costs = Costs.of(results, baseline, frames)
    print_costs(costs)
    plans = [plan_for(rate, costs, service.mean_ms()) for rate in PLAN_RATES]
    for plan in plans:
        print_plan(plan)
    print("\n" + summary(costs, plans[-1]))


if __name__ == "__main__":
    main()
