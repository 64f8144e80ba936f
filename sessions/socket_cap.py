"""Slots for live sockets, across processes: at most LIVE_MAX_SOCKETS_PER_USER per user, and at
most what the pose workers can serve at full rate for the whole service (`live_capacity`).

A socket claims a slot when it connects and claims it again on each of its access checks (every
LIVE_ACCESS_CHECK_S: its heartbeat); it releases the slot when it disconnects. A slot not claimed
again for LIVE_SOCKET_STALE_S is free: a process killed without cleaning up holds its slots that
long at most. A socket over the user's cap is closed with 4429, one over the service's capacity with
4503 (sessions.protocol): a patient told that the service is busy, rather than served a few frames
a second like everyone else already exercising.

- With Redis (REDIS_URL), one sorted set per pool of slots (a user's, the service's): members
  are connection ids, scores the time of their last claim on Redis's own clock (the web
  machines' clocks need not agree). A Lua script forgets stale members, counts and claims in one
  step, so two processes racing for the last slot cannot both get it.
- Without Redis there is one web process (the in-memory channel layer): the same rules in a dict
  under a lock.
"""

import functools
import math
import threading
import time
from typing import Any, Protocol

import redis
from django.conf import settings

from sessions import protocol
from sessions.heartbeat import count_alive


class SocketRegistry(Protocol):
    def claim(self, *, pool: str, connection_id: str, cap: int, stale_s: float) -> bool:
        """Take a slot, or renew this connection's; False when `cap` others hold the pool's."""
        ...

    def release(self, *, pool: str, connection_id: str) -> None: ...


# KEYS[1]: the pool's set; ARGV: connection id, cap, stale seconds. 1 when claimed, else 0.
_CLAIM_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stale = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - stale)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(stale))
  return 1
end
return 0
"""


class RedisSocketRegistry:
    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url)
        self._claim = self.redis.register_script(_CLAIM_SCRIPT)

    @staticmethod
    def key(pool: str) -> str:
        return f"rehab:live-sockets:{pool}"

    def claim(self, *, pool: str, connection_id: str, cap: int, stale_s: float) -> bool:
        return bool(self._claim(keys=[self.key(pool)], args=[connection_id, cap, stale_s]))

    def release(self, *, pool: str, connection_id: str) -> None:
        self.redis.zrem(self.key(pool), connection_id)


class LocalSocketRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, float]] = {}  # pool -> connection id -> last claim

    def claim(self, *, pool: str, connection_id: str, cap: int, stale_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            held = self._held.setdefault(pool, {})
            for other, claimed_at in list(held.items()):
                if now - claimed_at >= stale_s:
                    del held[other]
            if connection_id not in held and len(held) >= cap:
                return False
            held[connection_id] = now
            return True

    def release(self, *, pool: str, connection_id: str) -> None:
        with self._lock:
            held = self._held.get(pool, {})
            held.pop(connection_id, None)
            if not held:
                self._held.pop(pool, None)


@functools.cache
def _registry_for(redis_url: str) -> SocketRegistry:
    return RedisSocketRegistry(redis_url) if redis_url else LocalSocketRegistry()


def socket_registry() -> SocketRegistry:
    return _registry_for(settings.REDIS_URL)


def _user_pool(user_id: int) -> str:
    return f"user-{user_id}"


SERVICE_POOL = "service"


def socket_claim(*, user_id: int, connection_id: str) -> bool:
    """Claim or renew a live socket's slot with the configured cap and stale time."""
    return socket_registry().claim(
        pool=_user_pool(user_id),
        connection_id=connection_id,
        cap=settings.LIVE_MAX_SOCKETS_PER_USER,
        stale_s=settings.LIVE_SOCKET_STALE_S,
    )


def socket_release(*, user_id: int, connection_id: str) -> None:
    socket_registry().release(pool=_user_pool(user_id), connection_id=connection_id)


# Pose workers alive are counted at most this often per process (a SCAN of their heartbeats), not
# on every socket's access check.
CAPACITY_FRESH_S = 1.0
_capacity_seen: tuple[float, int | None] = (-math.inf, None)


def live_capacity() -> int | None:
    """Live streams the service takes at full rate: LIVE_STREAMS_PER_POSE_WORKER for each pose
    worker alive (the local pool's processes, or those beating in Redis: sessions.heartbeat), so
    that starting more workers admits more patients at once. None: no limit (the setting is 0)."""
    per_worker = settings.LIVE_STREAMS_PER_POSE_WORKER
    if per_worker == 0:
        return None
    if settings.POSE_TRANSPORT == "local":
        return per_worker * settings.POSE_LOCAL_WORKERS
    global _capacity_seen
    seen_at, capacity = _capacity_seen
    if capacity is None or time.monotonic() - seen_at > CAPACITY_FRESH_S:
        capacity = per_worker * count_alive(_redis(settings.REDIS_URL))
        _capacity_seen = (time.monotonic(), capacity)
    return capacity


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def stream_claim(*, connection_id: str) -> bool:
    """Claim or renew a live stream's place in the service's capacity. A stream already admitted
    keeps its place when the capacity falls (a worker died): every stream then slows alike."""
    capacity = live_capacity()
    if capacity is None:
        return True
    return socket_registry().claim(
        pool=SERVICE_POOL,
        connection_id=connection_id,
        cap=capacity,
        stale_s=settings.LIVE_SOCKET_STALE_S,
    )


def stream_release(*, connection_id: str) -> None:
    socket_registry().release(pool=SERVICE_POOL, connection_id=connection_id)


def service_busy_error() -> dict[str, Any]:
    """The ``error`` sent before the 4503 close, with ``retry_s``: when the page asks again."""
    retry_s = settings.LIVE_BUSY_RETRY_S
    message = protocol.error_message(
        "service_busy",
        "Many patients are exercising right now and the live service is full. Your session is "
        f"kept: this page tries again in {retry_s} seconds.",
    )
    return {**message, "retry_s": retry_s}


def too_many_sockets_error() -> dict[str, Any]:
    """The ``error`` sent before the 4429 close."""
    cap = settings.LIVE_MAX_SOCKETS_PER_USER
    pages = f"{cap} live page{'s' if cap != 1 else ''}"
    return protocol.error_message(
        "too_many_sockets",
        f"You already have {pages} open, in another window or on another device. "
        "Close one of them first.",
    )
