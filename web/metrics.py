"""Every metric of the platform for operators (Prometheus), and the helpers the code calls.

Several processes write metrics: the web process (daphne) and its local pose processes, each
``manage.py pose_worker``, the Celery worker and its prefork children. prometheus_client's
multiprocess mode makes them one view: each process writes its values to memory-mapped files in
the folder PROMETHEUS_MULTIPROC_DIR, and a scrape adds up the files. The library picks that mode
when it is first imported, so this module, the only one that imports it, sets the folder first:
docker-compose.yml gives each container its own (a tmpfs); without one, the first process makes a
fresh temporary folder that the processes it starts inherit, removed when it exits.

Labels hold codes and task names only, never anything about a patient. docs/operations.md says
what each metric means.
"""

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _share_metrics_folder() -> None:
    """Make sure PROMETHEUS_MULTIPROC_DIR names a folder before prometheus_client is imported."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return
    _remove_abandoned_folders()
    folder = tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-")
    os.environ[MULTIPROC_ENV] = folder
    atexit.register(_remove_folder, folder, os.getpid())


_FOLDER_PREFIX = "rehab-metrics-"


def _remove_folder(folder: str, owner: int) -> None:
    # Only the process that made it: a forked child inherits the exit handler.
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_abandoned_folders() -> None:
    """The folders of processes that ended without their exit handlers (killed)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_FOLDER_PREFIX}*-*"):
        owner = path.name.removeprefix(_FOLDER_PREFIX).split("-")[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether a process of this machine (or container) exists."""
    try:
        os.kill(pid, 0)  # signal 0: only asks
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


_share_metrics_folder()

# The imports wait for the folder (see the module's docstring).
from prometheus_client import (  # noqa: E402
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.exposition import choose_encoder  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.values import ValueClass  # noqa: E402

if not getattr(ValueClass, "_multiprocess", False):
    raise RuntimeError(
        "prometheus_client was imported before web.metrics set PROMETHEUS_MULTIPROC_DIR: each "
        "process would count on its own. Import web.metrics first."
    )

# --- Live frames (sessions/consumers.py) ---------------------------------------------------------
FRAMES_RECEIVED = Counter("rehab_live_frames_received", "Frames that arrived on live sockets.")
FRAMES_SERVED = Counter(
    "rehab_live_frames_served", "Frames whose pose went back to the page (a pose message)."
)
FRAMES_DROPPED = Counter(
    "rehab_live_frames_dropped",
    "Accepted frames that got no pose: replaced in the slot by a newer frame (latest frame "
    "wins) or lost at the pose service (its error code).",
    ["reason"],
)
FRAMES_REFUSED = Counter(
    "rehab_live_frames_refused",
    "Frames refused: over the rate limit or not a valid frame (the protocol's error code).",
    ["reason"],
)
SOCKETS_OPEN = Gauge(
    "rehab_live_sockets_open", "Live session sockets open now.", multiprocess_mode="livesum"
)

# --- Pose service -------------------------------------------------------------------------------
# A frame takes about 18-30 ms on one core (docs/architecture.md); the tail shows contention.
POSE_SECONDS = Histogram(
    "rehab_pose_seconds",
    "Time a pose worker spent on one frame (decoding and the pose engine).",
    buckets=(0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0),
)
POSE_ROUND_TRIP_SECONDS = Histogram(
    "rehab_pose_round_trip_seconds",
    "From the live socket sending a frame to a pose worker until the answer (or the timeout).",
    buckets=(0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0),
)
POSE_QUEUE_WAIT_SECONDS = Histogram(
    "rehab_pose_queue_wait_seconds",
    "Time a frame waited for a pose worker to take it (channel layer or local pool).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
POSE_WORKERS = Gauge(
    "rehab_pose_workers", "Pose worker processes running.", multiprocess_mode="livesum"
)
POSE_WORKERS_BUSY = Gauge(
    "rehab_pose_workers_busy", "Pose workers working on a frame now.", multiprocess_mode="livesum"
)

# --- Celery (rehab/celery.py) and reports ---------------------------------------------------------
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
TASK_QUEUE_SECONDS = Histogram(
    "rehab_celery_task_queue_seconds",
    "From a task's publication to its start on a worker.",
    ["task"],
    buckets=_TASK_BUCKETS,
)
TASK_RUN_SECONDS = Histogram(
    "rehab_celery_task_run_seconds", "Time a task ran.", ["task"], buckets=_TASK_BUCKETS
)
TASK_FAILURES = Counter("rehab_celery_task_failures", "Tasks that raised.", ["task"])
REPORT_SECONDS = Histogram(
    "rehab_report_seconds",
    "Time the progress report task took, by the report's status afterwards.",
    ["outcome"],
    buckets=(0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0),
)

# A label value is a code or a task name; anything else is reported as "other".
_LABEL_VALUE = re.compile(r"[a-z][a-z0-9_.]{0,79}")


def _label(value: str) -> str:
    return value if _LABEL_VALUE.fullmatch(value) else "other"


# --- Helpers: live sockets ------------------------------------------------------------------------
def frame_received() -> None:
    FRAMES_RECEIVED.inc()


def frame_served() -> None:
    FRAMES_SERVED.inc()


def frame_dropped(reason: str) -> None:
    FRAMES_DROPPED.labels(reason=_label(reason)).inc()


def frame_refused(reason: str) -> None:
    FRAMES_REFUSED.labels(reason=_label(reason)).inc()


def socket_opened() -> None:
    SOCKETS_OPEN.inc()


def socket_closed() -> None:
    SOCKETS_OPEN.dec()


def pose_round_trip() -> contextlib.AbstractContextManager[object]:
    """``with metrics.pose_round_trip(): answer = await client.estimate(...)``"""
    return POSE_ROUND_TRIP_SECONDS.time()


# --- Helpers: pose workers ------------------------------------------------------------------------
def pose_worker_started() -> None:
    POSE_WORKERS.set(1)


def pose_queue_wait(sent: object) -> None:
    """A worker took a request sent at `sent` (wall clock, time.time(), of the sending machine;
    anything else, e.g. a request from an older web process, is ignored)."""
    if isinstance(sent, int | float) and not isinstance(sent, bool):
        POSE_QUEUE_WAIT_SECONDS.observe(max(0.0, time.time() - sent))


@contextlib.contextmanager
def pose_busy() -> Iterator[None]:
    """Around a worker's work on one frame: busy meanwhile, and the time it took."""
    POSE_WORKERS_BUSY.inc()
    started = time.perf_counter()
    try:
        yield
    finally:
        POSE_SECONDS.observe(time.perf_counter() - started)
        POSE_WORKERS_BUSY.dec()


# --- Helpers: Celery and reports ----------------------------------------------------------------
def task_waited(task: str, seconds: float) -> None:
    TASK_QUEUE_SECONDS.labels(task=_label(task)).observe(max(0.0, seconds))


def task_ran(task: str, seconds: float) -> None:
    TASK_RUN_SECONDS.labels(task=_label(task)).observe(seconds)


def task_failed(task: str) -> None:
    TASK_FAILURES.labels(task=_label(task)).inc()


def report_made(outcome: str, seconds: float) -> None:
    REPORT_SECONDS.labels(outcome=_label(outcome)).observe(seconds)


# --- Processes and scraping -----------------------------------------------------------------------
def process_exited(pid: int) -> None:
    """Forget a finished process's live gauges (its counters and histograms still count)."""
    multiprocess.mark_process_dead(pid)


class _LiveProcessesCollector(multiprocess.MultiProcessCollector):
    """Adds up the processes' files, after forgetting the live gauges of processes that died
    without saying so (a killed pose process, a Celery child lost to the OOM killer)."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        super().__init__(registry, path)
        self.folder = path

    def collect(self) -> Iterable[Metric]:
        for pid in _dead_writers(self.folder):
            multiprocess.mark_process_dead(pid, self.folder)
        return super().collect()


_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def _dead_writers(folder: str) -> set[int]:
    """The processes (of this machine or container) that left live gauges and are gone."""
    pids = {int(m[1]) for name in os.listdir(folder) if (m := _LIVE_GAUGE_FILE.fullmatch(name))}
    return {pid for pid in pids if not _alive(pid)}


def scrape_registry() -> CollectorRegistry:
    """What a scrape shows: every process's values when they share a folder, else this one's."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return REGISTRY
    registry = CollectorRegistry()
    _LiveProcessesCollector(registry, folder)
    return registry


def exposition(accept: str) -> tuple[bytes, str]:
    """The scrape's body and content type, in the format the scraper asks for."""
    encoder, content_type = choose_encoder(accept)
    return encoder(scrape_registry()), content_type


def serve_on_port(port: int) -> None:
    """Serve this container's metrics over HTTP on `port` (pose workers, the Celery worker: not
    published outside the compose network); 0: not at all."""
    if port:
        start_http_server(port, registry=scrape_registry())
