"""`manage.py pose_worker`: serve live frames from the channel layer (Redis).

Run any number of these on any number of machines: each reads the shared channel
``pose-requests`` (every request goes to exactly one worker), runs the pose engine on the frame
with the tracking state that came with it, and sends the answer to the consumer that asked.
Requests older than their ``expires`` time are skipped: after a stall the workers go straight to
current frames instead of working off a backlog.
"""

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analysis.pose.types import PoseReply, PoseRequest
from analysis.pose.worker import FrameServer, pin_to_cpu
from sessions import heartbeat
from sessions.pose_client import REQUEST_CHANNEL
from web import metrics
from web.outages import REDIS_AWAY

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve pose estimation for live sessions from the channel layer (needs Redis)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--cpu",
            type=int,
            help="keep this worker on one CPU (an index into the CPUs it may use): one worker "
            "per CPU, so that workers do not fight over cores",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        layer = get_channel_layer()
        if layer is None or not hasattr(layer, "hosts"):
            raise CommandError("pose_worker needs the Redis channel layer: set REDIS_URL.")
        if options["cpu"] is not None:
            pin_to_cpu(options["cpu"])
        server = FrameServer(settings.POSE_RUNTIME)
        metrics.serve_on_port(settings.METRICS_PORT)
        metrics.pose_worker_started()
        self.stdout.write(f"pose worker ready, reading {REQUEST_CHANNEL!r}", ending="\n")
        self.stdout.flush()
        asyncio.run(serve(layer, server))


# While Redis is away (a restart, the network), ask again after this long, growing to the max.
RETRY_S, RETRY_MAX_S = 0.5, 5.0


async def serve(layer: Any, server: FrameServer) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # On this loop, between frames: a worker stuck in a frame stops beating (sessions/heartbeat.py).
    beating = asyncio.ensure_future(
        heartbeat.beat(
            settings.REDIS_URL,
            stopping,
            ttl_s=settings.POSE_HEARTBEAT_TTL_S,
            every_s=settings.POSE_HEARTBEAT_EVERY_S,
        )
    )
    retry_s = RETRY_S
    while not stopping.is_set():
        try:
            await serve_one(layer, server, stopping)
            retry_s = RETRY_S
        except REDIS_AWAY:
            # Whatever was in flight is lost (its consumer times out); wait for Redis to be back.
            logger.warning("pose worker lost Redis; trying again in %.1f s", retry_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), retry_s)
            retry_s = min(retry_s * 2, RETRY_MAX_S)
    await beating  # deletes the heartbeat key


async def serve_one(layer: Any, server: FrameServer, stopping: asyncio.Event) -> None:
    """Take one request and answer it (or return when asked to stop)."""
    receiving = asyncio.ensure_future(layer.receive(REQUEST_CHANNEL))
    stopped = asyncio.ensure_future(stopping.wait())
    done, _ = await asyncio.wait({receiving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if receiving not in done:
        receiving.cancel()
        return
    stopped.cancel()
    request: PoseRequest = receiving.result()
    metrics.pose_queue_wait(request.get("sent"))  # absent from an older web process's requests
    if time.time() > request.get("expires", 0):
        return
    with metrics.pose_busy():
        answer = server.serve(request["frame"], request["t"], request.get("tracking"))
    reply: PoseReply = {"type": "pose.result", "id": request["id"], "answer": answer}
    try:
        await layer.send(request["reply_to"], reply)
    except ChannelFull:
        # The web process's reply channel is full (it is behind): this answer is lost, its
        # consumer times out on the frame, and the worker goes on with the next request.
        metrics.frame_dropped("reply_channel_full")
