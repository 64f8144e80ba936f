"""How the live consumer reaches a pose worker: one frame in, one answer out (see
analysis.pose.worker.serve_frame for the answer).

Two transports, chosen by settings.POSE_TRANSPORT:

- ``channels`` (production, with Redis): requests go to the shared channel ``pose-requests``,
  which any number of ``manage.py pose_worker`` processes on any number of machines read from;
  each request is taken by exactly one of them, and the answer comes back to the consumer's own
  channel. Tracking state travels with every request, so consecutive frames of one stream may be
  served by different workers and a dead worker costs one frame (the request times out).
- ``local`` (embedded default): a pool of worker processes that the web process starts on first
  use, running the same worker code.

Either way the consumer awaits ``estimate``; an answer that does not come within
POSE_TIMEOUT_S is reported as the error ``pose_timeout`` and the stream goes on with the next frame.
"""

import asyncio
import itertools
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from django.conf import settings

from analysis.pose.types import PoseAnswer, PoseReply, PoseRequest, TrackingWire
from analysis.pose.worker import serve_frame_in_process, start_process_server
from web import metrics
from web.outages import REDIS_AWAY

logger = logging.getLogger(__name__)

REQUEST_CHANNEL = "pose-requests"
TIMEOUT_ANSWER: PoseAnswer = {
    "error": "pose_timeout",
    "message": "The pose service did not answer in time.",
}
FAILED_ANSWER: PoseAnswer = {
    "error": "pose_failed",
    "message": "The pose service failed on this frame.",
}
BUSY_ANSWER: PoseAnswer = {
    "error": "pose_busy",
    "message": "The pose service is busy; frame skipped.",
}
UNREACHABLE_ANSWER: PoseAnswer = {
    "error": "pose_unreachable",
    "message": "The pose service cannot be reached; frame skipped.",
}


class PoseClient(Protocol):
    async def estimate(
        self, frame: bytes, timestamp_s: float, tracking: TrackingWire | None
    ) -> PoseAnswer: ...

    def resolve(self, message: PoseReply) -> None: ...


class ChannelPoseClient:
    """Sends to the pose workers through the channel layer; `resolve` is called by the consumer's
    ``pose.result`` handler with each answer."""

    def __init__(self, layer: BaseChannelLayer, reply_to: str) -> None:
        self.layer = layer
        self.reply_to = reply_to
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[PoseAnswer]] = {}

    async def estimate(
        self, frame: bytes, timestamp_s: float, tracking: TrackingWire | None
    ) -> PoseAnswer:
        request_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        request: PoseRequest = {
            "type": "pose.request",
            "id": request_id,
            "reply_to": self.reply_to,
            "frame": frame,
            "t": timestamp_s,
            "tracking": tracking,
            # A worker skips requests older than this (wall clock): a backlog is never worked off
            # after the patient has moved on.
            "expires": time.time() + settings.POSE_TIMEOUT_S,
            "sent": time.time(),
        }
        try:
            await self.layer.send(REQUEST_CHANNEL, request)
            return await asyncio.wait_for(answer, settings.POSE_TIMEOUT_S)
        except ChannelFull:
            return BUSY_ANSWER
        except TimeoutError:  # before REDIS_AWAY: a TimeoutError is an OSError too
            return TIMEOUT_ANSWER
        except REDIS_AWAY:
            return UNREACHABLE_ANSWER  # the consumer is closed for a reconnect (1013) meanwhile
        finally:
            self._waiting.pop(request_id, None)

    def resolve(self, message: PoseReply) -> None:
        answer = self._waiting.get(message.get("id", -1))
        if answer is not None and not answer.done():
            answer.set_result(message.get("answer") or {})


class LocalPoseClient:
    """The embedded default: the shared local process pool."""

    async def estimate(
        self, frame: bytes, timestamp_s: float, tracking: TrackingWire | None
    ) -> PoseAnswer:
        loop = asyncio.get_running_loop()
        pool = local_pool()
        # Until the pool has answered once, its processes may still be loading the models.
        timeout = settings.POSE_TIMEOUT_S if _pool_started.is_set() else POOL_START_TIMEOUT_S
        try:
            job = loop.run_in_executor(
                pool, serve_measured, frame, timestamp_s, tracking, time.time()
            )
            answer = await asyncio.wait_for(job, timeout)
        except BrokenProcessPool:
            # A worker process died (killed, out of memory): the next frame gets a fresh pool.
            _replace_pool(pool)
            return TIMEOUT_ANSWER
        except TimeoutError:
            return TIMEOUT_ANSWER
        except Exception:
            # The worker answers errors itself; this is a fault of the pool (e.g. pickling).
            logger.exception("local pose worker failed")
            return FAILED_ANSWER
        _pool_started.set()
        return answer

    def resolve(self, message: PoseReply) -> None:
        pass


POOL_START_TIMEOUT_S = 30.0
_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
_pool_started = threading.Event()


def local_pool() -> ProcessPoolExecutor:
    """The web process's pose worker processes, started on first use (spawned, not forked: the
    web process runs threads and an event loop that a fork would copy half-way)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            spawn = multiprocessing.get_context("spawn")
            _pool = ProcessPoolExecutor(
                max_workers=settings.POSE_LOCAL_WORKERS,
                mp_context=spawn,
                initializer=start_measured_server,
                # Each process takes the next CPU and runs this process's POSE_RUNTIME.
                initargs=(spawn.Value("i", 0), settings.POSE_RUNTIME),
            )
            # Start every process now (they spawn one per waiting job): the models load while
            # the patient gets into place, not on the first frames.
            for _ in range(settings.POSE_LOCAL_WORKERS):
                _pool.submit(os.getpid)
        return _pool


def stop_local_pool() -> None:
    """Stop the local pose processes, if started: the next frame starts a pool with the settings
    of then (a test that changed POSE_LOCAL_WORKERS leaves none of its size behind)."""
    if (pool := _pool) is not None:
        _replace_pool(pool)


def started_local_pool() -> ProcessPoolExecutor | None:
    """The local pool if it has been started, else None; starts nothing (readiness reads it)."""
    return _pool


def start_measured_server(started: Any, runtime: str) -> None:
    """The pool's initializer, in each pose process: the worker on a CPU of its own, counted
    (web.metrics; the processes inherit the web process's metrics folder)."""
    start_process_server(started, runtime)
    metrics.pose_worker_started()


def serve_measured(
    frame: bytes, timestamp_s: float, tracking: TrackingWire | None, sent: float
) -> PoseAnswer:
    """The pool's task, in a pose process: the worker's answer, with its wait and time measured
    there (analysis/ knows nothing of metrics)."""
    metrics.pose_queue_wait(sent)
    with metrics.pose_busy():
        return serve_frame_in_process(frame, timestamp_s, tracking)


def _replace_pool(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is broken:
            _pool = None
            _pool_started.clear()
    broken.shutdown(wait=False, cancel_futures=True)


def warm_up() -> None:
    """Start the local pose worker processes ahead of the first frame (embedded default only)."""
    if settings.POSE_TRANSPORT == "local":
        local_pool()


def pose_client(layer: BaseChannelLayer | None, reply_to: str) -> PoseClient:
    if settings.POSE_TRANSPORT == "channels":
        if layer is None:
            raise RuntimeError("POSE_TRANSPORT=channels needs a channel layer")
        return ChannelPoseClient(layer, reply_to)
    return LocalPoseClient()
