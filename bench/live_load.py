"""Load on the live path: N simulated patients stream a video at 15 frames/s over real WebSockets.

    .venv/bin/python bench/live_load.py --clients 1 --seconds 30 --video PATH
    .venv/bin/python bench/live_load.py --clients 4 --seconds 60 --video PATH

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
"""

import argparse
import asyncio
import json
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
WARM_UP_S = 10.0  # memory is compared from here to the end: allocations settle in the first seconds


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--video", type=Path, default=ROOT / "tests/fixtures/squat_side_rohanx01.mp4"
    )
    parser.add_argument("--workers", type=int, default=2, help="pose_worker processes")
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


def start_servers(env: dict[str, str], port: int, workers: int) -> dict[str, subprocess.Popen]:
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
        processes[f"pose_worker {n + 1}"] = quiet([python, "manage.py", "pose_worker"])
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


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="live-load-") as var_dir:
        env = configure(args.redis, Path(var_dir))
        redis.Redis.from_url(args.redis).flushdb()
        import django

        django.setup()
        clients = create_patients(args.clients)
        frames = load_frames(args.video)
        print(f"{len(frames)} frames of {args.video.name} at {FPS} frames/s, "
              f"{statistics.mean(map(len, frames)) / 1024:.0f} KB per JPEG")  # fmt: skip

        bare = bare_inference_ms(frames)
        port = free_port()
        servers = start_servers(env, port, args.workers)
        memory: dict[str, dict[str, float]] = {}

        async def measure() -> list[ClientStats]:
            async def snapshot(label: str, after_s: float) -> None:
                await asyncio.sleep(after_s)
                memory[label] = {name: rss_mb(p.pid) for name, p in servers.items()}

            await snapshot("idle", 0)
            warmed = asyncio.create_task(snapshot(f"after {WARM_UP_S:.0f} s", WARM_UP_S))
            url = f"ws://127.0.0.1:{port}"
            stats = await run_clients(url, clients, frames, args.seconds)
            await warmed
            await snapshot("end", 0)
            return stats

        try:
            started = time.perf_counter()
            stats = asyncio.run(measure())
            elapsed = time.perf_counter() - started
        finally:
            for process in servers.values():
                process.terminate()
            for process in servers.values():
                process.wait(timeout=20)
    report(args, bare, stats, elapsed, memory)


def report(
    args: argparse.Namespace,
    bare: list[float],
    stats: list[ClientStats],
    elapsed: float,
    memory: dict[str, dict[str, float]],
) -> None:
    round_trips = [ms for client in stats for ms in client.round_trips_ms]
    errors: dict[str, int] = {}
    for client in stats:
        for code, count in client.errors.items():
            errors[code] = errors.get(code, 0) + count
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
    labels = list(memory)
    print("\nserver memory (RSS, MB)   " + "".join(f"{label:>12}" for label in labels))
    names = list(memory[labels[0]])
    totals = {label: sum(memory[label].values()) for label in labels}
    for name in [*names, "total"]:
        values = [totals[label] if name == "total" else memory[label][name] for label in labels]
        print(f"  {name:24}" + "".join(f"{value:12.0f}" for value in values))
    growth = totals["end"] - totals[labels[1]]
    print(f"\ngrowth from {labels[1]} to the end: {growth:+.1f} MB")


if __name__ == "__main__":
    main()
