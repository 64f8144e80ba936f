"""Pose worker heartbeats: each `manage.py pose_worker` keeps a key alive in Redis while it serves.

The key ``pose-worker:heartbeat:<hostname>:<pid>`` holds the time of the last beat and expires
POSE_HEARTBEAT_TTL_S after it. The worker refreshes it every POSE_HEARTBEAT_EVERY_S from its
event loop, between frames, and deletes it when it stops: a worker that died, lost Redis or hangs
in one frame for longer than the TTL stops beating, and its key expires. Readiness
(sessions/health.py, ``/health/ready``) counts the live keys; the pose-worker container's health
check looks for the ones of its own host:

    python -m sessions.heartbeat    # exit 0 while a pose worker of this host beats, 1 otherwise

Only Redis is needed here, no Django: the container's probe starts in a fraction of a second.
"""

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time

import redis
import redis.asyncio

from web.outages import REDIS_AWAY

logger = logging.getLogger(__name__)

KEY_PREFIX = "pose-worker:heartbeat:"
# A probe that cannot reach Redis within this long reports no worker.
PROBE_TIMEOUT_S = 2.0


def own_key() -> str:
    return f"{KEY_PREFIX}{socket.gethostname()}:{os.getpid()}"


async def beat(url: str, stopping: asyncio.Event, *, ttl_s: float, every_s: float) -> None:
    """Keep this process's key alive until `stopping` is set, then delete it. A beat that fails
    (Redis away) is logged once and tried again at the next one."""
    key = own_key()
    client = redis.asyncio.Redis.from_url(
        url, socket_connect_timeout=every_s, socket_timeout=every_s
    )
    failing = False
    try:
        while not stopping.is_set():
            try:
                await client.set(key, time.time(), px=round(ttl_s * 1000))
                failing = False
            except REDIS_AWAY:
                if not failing:
                    logger.warning("pose worker heartbeat cannot reach Redis")
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), every_s)
        with contextlib.suppress(*REDIS_AWAY):
            await client.delete(key)  # gone at once, not a TTL later
    finally:
        await client.aclose()


def count_alive(client: redis.Redis, *, host: str = "*") -> int:
    """The pose workers whose key has not expired (on `host`, or anywhere)."""
    return sum(1 for _ in client.scan_iter(match=f"{KEY_PREFIX}{host}:*", count=1000))


def main() -> int:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        print("REDIS_URL is not set: pose workers need Redis", file=sys.stderr)
        return 1
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S
    )
    try:
        alive = count_alive(client, host=socket.gethostname())
    except REDIS_AWAY as error:
        print(f"Redis unreachable: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"{alive} pose worker(s) of this host beating")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
