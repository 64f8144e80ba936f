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

from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from analysis.pose.types import PoseReply, PoseRequest
from analysis.pose.worker import FrameServer
from sessions.pose_client import REQUEST_CHANNEL
from web.outages import REDIS_AWAY

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve pose estimation for live sessions from the channel layer (needs Redis)."

    def handle(self, *args: Any, **options: Any) -> None:
        layer = get_channel_layer()
        if layer is None or not hasattr(layer, "hosts"):
            raise CommandError("pose_worker needs the Redis channel layer: set REDIS_URL.")
        server = FrameServer()
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
    if time.time() > request.get("expires", 0):
        return
    answer = server.serve(request["frame"], request["t"], request.get("tracking"))
    reply: PoseReply = {"type": "pose.result", "id": request["id"], "answer": answer}
    await layer.send(request["reply_to"], reply)
