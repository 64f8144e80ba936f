"""Load on the live path: N simulated patients stream a video at 15 frames/s over real WebSockets.

    .venv/bin/python bench/live_load.py --clients 1 --seconds 30 --video PATH
    .venv/bin/python bench/live_load.py --clients 4 --seconds 60 --video PATH
    .venv/bin/python bench/live_load.py --ramp 1,2,4,6,8 --seconds 20

(PATH defaults to the side-view squat video in tests/fixtures.)

It starts the production topology on this machine: daphne (rehab.asgi), `--workers` processes of
`manage.py pose_worker` and a Celery worker, all on Redis (REDIS_URL, default db 14 of the local
Redis, flushed first) and a fresh SQLite database in a temporary folder, with one patient and one
open session per client. Each client sends the video's frames (fitted into 640x480, JPEG 70, as the
page does) at 15 frames/s, looping, with at most two frames unanswered (a tick with two
outstanding is skipped, as the page does).

Printed: round trip per frame (send -> its pose message) p50/p95/max, frames served per second,
frames the server dropped (latest frame wins) and ticks skipped, errors, and the resident memory of
the server processes at the start and the end. Before the clients start, bare inference
(MediaPipe's own pose API in tracking mode on the same frames, in this process) is timed, and the
round trip is compared with it. Target with 1 client: p95 round trip <= bare p95 + 15 ms.

With --ramp the same servers take one step of clients after another (each for --seconds), and each
step prints its round trip, frames served per second per client (the slowest and the median
client) and drops; the last line is the largest step at full rate: every client served at least
14 frames/s with a p95 round trip of at most 100 ms.
"""

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess  # nosec B404 # starts this virtualenv's own servers, see start_servers
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
FPS = 15
MAX_IN_FLIGHT = 2
WARM_UP_S = 10.0
# A stream at full rate: what the ramp's last line counts.
FULL_RATE_SERVED_PER_S = 14.0
FULL_RATE_P95_MS = (
    100.0  # memory is compared from here to the end: allocations settle in the first seconds
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument(
        "--ramp",
        type=lambda text: [int(n) for n in text.split(",")],
        help="steps of clients, e.g. 1,2,4,6,8 (replaces --clients)",
    )
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--video", type=Path, default=ROOT / "tests/fixtures/squat_side_rohanx01.mp4"
    )
    parser.add_argument("--workers", type=int, default=2, help="pose_worker processes")
    parser.add_argument(
        "--no-pin", action="store_true", help="leave the pose workers free to move between CPUs"
    )
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    return parser.parse_args()


# --- Set-up: environment, database, server processes ---------------------------------------------
def configure(redis_url: str, var_dir: Path) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REHAB_ENV")
    }
    env.update(
        REDIS_URL=redis_url,
        REHAB_VAR_DIR=str(var_dir),
        POSE_TRANSPORT="channels",
        # Every server process writes its metrics here: daphne's /metrics adds them all up.
        PROMETHEUS_MULTIPROC_DIR=str(var_dir / "metrics"),
        # Measure beyond the service's own capacity (sessions/socket_cap.py): never refused.
        LIVE_STREAMS_PER_POSE_WORKER="0",
        DJANGO_SETTINGS_MODULE="rehab.settings",
        LOG_LEVEL="WARNING",
    )
    os.environ.update(env)
    for key in ("DATABASE_URL", "REHAB_ENV"):
        os.environ.pop(key, None)
    return env


def create_patients(count: int) -> list[tuple[str, str]]:
    """(session id, session cookie) per client: a patient with one open session each."""
    import datetime

    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from patients.models import Exercise
    from patients.services import (
        PatientFields,
        assignment_save,
        patient_create,
        protocol_save,
        therapist_create,
    )
    from sessions.services import session_start

    call_command("migrate", verbosity=0)
    therapist = therapist_create(
        email="bench@example.org",
        first_name="Bench",
        last_name="Mark",
        password="bench-password",  # nosec B106 # a user of the benchmark's throwaway database
    )
    squat = Exercise.objects.get(slug="squat", owner=None)
    line = {"exercise": squat, "side": "right", "sets": 10, "reps": 30, "hold_s": 0,
            "rest_s": 30, "target_rom_deg": 90.0, "sessions_per_week": 7, "notes": ""}  # fmt: skip
    protocol = protocol_save(
        therapist=therapist, protocol=None, name="Squats", notes="", lines=[line]
    )
    today = timezone.localdate()
    clients = []
    for n in range(count):
        fields = PatientFields(
            first_name="Client",
            last_name=str(n),
            email=f"client{n}@example.org",
            condition="Load test",
            affected_side="right",
        )
        patient = patient_create(therapist=therapist, fields=fields)
        assignment_save(patient=patient, protocol=protocol, start_date=today,
                        end_date=today + datetime.timedelta(days=1))  # fmt: skip
        session = session_start(patient=patient, prescription=protocol.prescriptions.get())
        browser = Client()
        browser.force_login(patient.user)
        clients.append((str(session.pk), browser.cookies["sessionid"].value))
    return clients


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_servers(
    env: dict[str, str], port: int, workers: int, *, pin: bool = True
) -> dict[str, subprocess.Popen]:
    python = str(BIN / "python")

    def quiet(argv: list[str]) -> subprocess.Popen:
        # A fixed argv of this virtualenv's own executables, no shell, no outside input.
        return subprocess.Popen(  # nosec B603 # see the line above
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    processes = {
        "daphne": quiet(
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "rehab.asgi:application"]
        ),
        "celery": quiet(
            [str(BIN / "celery"), "-A", "rehab", "worker", "--pool=solo", "--loglevel=warning"]
        ),
    }
    for n in range(workers):
        pinned = ["--cpu", str(n)] if pin else []
        processes[f"pose_worker {n + 1}"] = quiet([python, "manage.py", "pose_worker", *pinned])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    time.sleep(8)  # the pose workers load their models (about 1-2 s each, in parallel)
    return processes


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- Frames and bare inference -------------------------------------------------------------------
def load_frames(video: Path) -> list[bytes]:
    import cv2

    capture = cv2.VideoCapture(str(video))
    step = max(1, round(capture.get(cv2.CAP_PROP_FPS) / FPS))
    frames, index = [], 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % step == 0:
            scale = min(640 / image.shape[1], 480 / image.shape[0])
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            frames.append(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes())
        index += 1
    return frames


def bare_inference_ms(frames: list[bytes]) -> list[float]:
    """MediaPipe's own pose API, tracking mode, on the decoded frames: ms per frame."""
    import cv2
    import mediapipe as mp
    import numpy as np

    images = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for jpeg in frames]
    times = []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        for image in images[:5]:
            pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))  # warm up
        for image in images:
            started = time.perf_counter()
            pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            times.append((time.perf_counter() - started) * 1000)
    return times


# --- Clients -------------------------------------------------------------------------------------
@dataclass
class ClientStats:
    round_trips_ms: list[float] = field(default_factory=list)
    sent: int = 0
    skipped: int = 0  # ticks with two frames unanswered
    dropped: int = 0  # replaced in the server's slot
    errors: dict[str, int] = field(default_factory=dict)


async def run_client(
    url: str, session_id: str, cookie: str, frames: list[bytes], seconds: float
) -> ClientStats:
    import websockets

    from sessions.protocol import encode_frame

    stats = ClientStats()
    sent_at: dict[int, float] = {}
    headers = {"Cookie": f"sessionid={cookie}", "Origin": url.replace("ws://", "http://")}
    async with websockets.connect(
        f"{url}/ws/sessions/{session_id}/live/", additional_headers=headers, max_size=2**22
    ) as socket_:
        ready = json.loads(await socket_.recv())
        if ready["type"] != "ready":  # not an assert: python -O would skip the check
            raise RuntimeError(f"the server did not say ready: {ready}")

        async def receive() -> None:
            async for text in socket_:
                message = json.loads(text)
                if message["type"] not in ("pose", "error"):
                    continue
                sequence = message["seq"]
                if message["type"] == "error":
                    stats.errors[message["code"]] = stats.errors.get(message["code"], 0) + 1
                elif sequence in sent_at:
                    stats.round_trips_ms.append((time.perf_counter() - sent_at[sequence]) * 1000)
                    stats.dropped = message["dropped"]
                for older in [s for s in sent_at if s <= (sequence or 0)]:
                    del sent_at[older]

        receiving = asyncio.create_task(receive())
        started = time.perf_counter()
        sequence = 0
        while (now := time.perf_counter()) - started < seconds:
            tick = started + (sequence + stats.skipped + 1) / FPS
            await asyncio.sleep(max(0.0, tick - now))
            if len(sent_at) >= MAX_IN_FLIGHT:
                stats.skipped += 1
                continue
            sequence += 1
            capture_ms = (time.perf_counter() - started) * 1000
            sent_at[sequence] = time.perf_counter()
            await socket_.send(encode_frame(sequence, capture_ms, frames[sequence % len(frames)]))
            stats.sent += 1
        await asyncio.sleep(1.0)  # the last answers
        receiving.cancel()
    return stats


async def run_clients(
    url: str, clients: list[tuple[str, str]], frames: list[bytes], seconds: float
) -> list[ClientStats]:
    return await asyncio.gather(
        *(run_client(url, session, cookie, frames, seconds) for session, cookie in clients)
    )


# --- Report --------------------------------------------------------------------------------------
def percentile(values: list[float], q: int) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if values else float("nan")
    )


@dataclass
class Step:
    clients: int
    stats: list[ClientStats]
    elapsed_s: float
    where_ms: dict[str, float]  # where a frame's time went, means over the step (stage_means)


# --- Where a frame's time goes: the servers' own metrics (web/metrics.py) -----------------------
STAGES = {  # histogram -> what it times
    "rehab_pose_round_trip_seconds": "web: frame sent to a worker -> its answer",
    "rehab_pose_queue_wait_seconds": "waiting in the channel for a worker",
    "rehab_pose_seconds": "a worker on the frame (JPEG decode + pose)",
}


def scrape_sums(port: int) -> dict[str, tuple[float, float]]:
    """(sum, count) of each STAGES histogram, over every server process."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:  # nosec B310 # our own server
        text = response.read().decode()
    sums: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name in STAGES:
            values = {sample.name: sample.value for sample in family.samples}
            sums[family.name] = (values[family.name + "_sum"], values[family.name + "_count"])
    return sums


def stage_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean ms per frame of each stage between two scrapes."""
    means = {}
    for name in STAGES:
        (sum_0, count_0), (sum_1, count_1) = before.get(name, (0, 0)), after.get(name, (0, 0))
        means[name] = (
            (sum_1 - sum_0) / (count_1 - count_0) * 1000 if count_1 > count_0 else math.nan
        )
    return means


def main() -> None:
    args = parse_args()
    counts = args.ramp or [args.clients]
    with tempfile.TemporaryDirectory(prefix="live-load-") as var_dir:
        env = configure(args.redis, Path(var_dir))
        redis.Redis.from_url(args.redis).flushdb()
        import django

        django.setup()
        clients = create_patients(max(counts))
        frames = load_frames(args.video)
        print(f"{len(frames)} frames of {args.video.name} at {FPS} frames/s, "
              f"{statistics.mean(map(len, frames)) / 1024:.0f} KB per JPEG")  # fmt: skip

        bare = bare_inference_ms(frames)
        port = free_port()
        servers = start_servers(env, port, args.workers, pin=not args.no_pin)
        memory: dict[str, dict[str, float]] = {}

        async def measure() -> list[Step]:
            async def snapshot(label: str, after_s: float) -> None:
                await asyncio.sleep(after_s)
                memory[label] = {name: rss_mb(p.pid) for name, p in servers.items()}

            await snapshot("idle", 0)
            warmed = asyncio.create_task(snapshot(f"after {WARM_UP_S:.0f} s", WARM_UP_S))
            url = f"ws://127.0.0.1:{port}"
            steps = []
            for count in counts:
                started, before = time.perf_counter(), scrape_sums(port)
                stats = await run_clients(url, clients[:count], frames, args.seconds)
                where = stage_means(before, scrape_sums(port))
                steps.append(Step(count, stats, time.perf_counter() - started, where))
            await warmed
            await snapshot("end", 0)
            return steps

        try:
            steps = asyncio.run(measure())
        finally:
            for process in servers.values():
                process.terminate()
            for process in servers.values():
                process.wait(timeout=20)
    if args.ramp:
        report_ramp(args, bare, steps, memory)
    else:
        report(args, bare, steps[0].stats, steps[0].elapsed_s, memory)


def report(
    args: argparse.Namespace,
    bare: list[float],
    stats: list[ClientStats],
    elapsed: float,
    memory: dict[str, dict[str, float]],
) -> None:
    round_trips = [ms for client in stats for ms in client.round_trips_ms]
    errors = error_counts(stats)
    bare_p95, rtt_p95 = percentile(bare, 95), percentile(round_trips, 95)
    print(f"\n{args.clients} client(s) x {args.seconds:.0f} s at {FPS} frames/s, "
          f"{args.workers} pose workers\n")  # fmt: skip
    print(f"{'':28}{'p50':>9}{'p95':>9}{'max':>9}")
    print(f"{'bare inference (ms)':28}{percentile(bare, 50):9.1f}{bare_p95:9.1f}{max(bare):9.1f}")
    print(f"{'round trip per frame (ms)':28}{percentile(round_trips, 50):9.1f}{rtt_p95:9.1f}"
          f"{max(round_trips, default=float('nan')):9.1f}")  # fmt: skip
    print(f"\nround trip p95 - bare p95: {rtt_p95 - bare_p95:+.1f} ms "
          f"(ratio {rtt_p95 / bare_p95:.2f})")  # fmt: skip
    sent = sum(client.sent for client in stats)
    print(f"frames sent {sent}, served {len(round_trips)} ({len(round_trips) / elapsed:.1f}/s), "
          f"dropped by the server {sum(c.dropped for c in stats)}, "
          f"ticks skipped (2 unanswered) {sum(c.skipped for c in stats)}, "
          f"errors {errors or 0}")  # fmt: skip
    report_memory(memory)


def report_memory(memory: dict[str, dict[str, float]]) -> None:
    labels = list(memory)
    print("\nserver memory (RSS, MB)   " + "".join(f"{label:>12}" for label in labels))
    names = list(memory[labels[0]])
    totals = {label: sum(memory[label].values()) for label in labels}
    for name in [*names, "total"]:
        values = [totals[label] if name == "total" else memory[label][name] for label in labels]
        print(f"  {name:24}" + "".join(f"{value:12.0f}" for value in values))
    growth = totals["end"] - totals[labels[1]]
    print(f"\ngrowth from {labels[1]} to the end: {growth:+.1f} MB")


def error_counts(stats: list[ClientStats]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for client in stats:
        for code, count in client.errors.items():
            errors[code] = errors.get(code, 0) + count
    return errors


def report_where(steps: list[Step]) -> None:
    """Per step, the mean ms of each stage of a frame, from the page's send to its answer: the
    rest of the client's round trip is the WebSocket, daphne and the consumer's own work."""
    print("\nwhere a frame's time goes (mean ms)")
    print(
        f"  {'clients':>7}{'page':>8}{'web':>8}{'queue':>8}{'worker':>8}  page = client round trip"
    )
    for step in steps:
        page = statistics.mean([ms for c in step.stats for ms in c.round_trips_ms] or [math.nan])
        where = step.where_ms
        print(f"  {step.clients:7d}{page:8.1f}"
              + "".join(f"{where[name]:8.1f}" for name in STAGES))  # fmt: skip
    print("  web: " + STAGES["rehab_pose_round_trip_seconds"] + "; queue: "
          + STAGES["rehab_pose_queue_wait_seconds"] + "; worker: "
          + STAGES["rehab_pose_seconds"])  # fmt: skip


def report_ramp(
    args: argparse.Namespace,
    bare: list[float],
    steps: list[Step],
    memory: dict[str, dict[str, float]],
) -> None:
    """One line per step; the last line names the largest step every client got at full rate."""
    print(f"\nramp {','.join(str(step.clients) for step in steps)} clients x {args.seconds:.0f} s "
          f"at {FPS} frames/s, {args.workers} pose workers; bare inference p50 "
          f"{percentile(bare, 50):.1f} ms, p95 {percentile(bare, 95):.1f} ms\n")  # fmt: skip
    print(f"{'clients':>7}{'rtt p50':>9}{'p95':>8}{'served/s':>10}{'per client min':>16}"
          f"{'median':>8}{'dropped':>9}{'skipped':>9}  errors")  # fmt: skip
    full_rate = 0
    for step in steps:
        round_trips = [ms for client in step.stats for ms in client.round_trips_ms]
        per_client = [len(client.round_trips_ms) / args.seconds for client in step.stats]
        p95 = percentile(round_trips, 95)
        print(f"{step.clients:7d}{percentile(round_trips, 50):9.0f}{p95:8.0f}"
              f"{sum(per_client):10.1f}{min(per_client):16.1f}{statistics.median(per_client):8.1f}"
              f"{sum(c.dropped for c in step.stats):9d}{sum(c.skipped for c in step.stats):9d}"
              f"  {error_counts(step.stats) or 0}")  # fmt: skip
        if p95 <= FULL_RATE_P95_MS and min(per_client) >= FULL_RATE_SERVED_PER_S:
            full_rate = max(full_rate, step.clients)
    report_where(steps)
    report_memory(memory)
    print(f"full-rate streams {full_rate} (p95 <= {FULL_RATE_P95_MS:.0f} ms, "
          f"served >= {FULL_RATE_SERVED_PER_S:.0f}/s each)")  # fmt: skip


if __name__ == "__main__":
    main()
