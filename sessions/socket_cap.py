"""At most LIVE_MAX_SOCKETS_PER_USER live sockets per user at once, across processes.

A socket claims a slot when it connects and claims it again on each of its access checks (every
LIVE_ACCESS_CHECK_S: its heartbeat); it releases the slot when it disconnects. A slot not claimed
again for LIVE_SOCKET_STALE_S is free: a process killed without cleaning up holds its slots that
long at most. A socket over the cap is closed with 4429 (sessions.protocol).

- With Redis (REDIS_URL), one sorted set per user: members are connection ids, scores the time of
  their last claim on Redis's own clock (the web machines' clocks need not agree). A Lua script
  forgets stale members, counts and claims in one step, so two processes racing for the last slot
  cannot both get it.
- Without Redis there is one web process (the in-memory channel layer): the same rules in a dict
  under a lock.
"""

import functools
import threading
import time
from typing import Any, Protocol

import redis
from django.conf import settings

from sessions import protocol


class SocketRegistry(Protocol):
    def claim(self, *, user_id: int, connection_id: str, cap: int, stale_s: float) -> bool:
        """Take a slot, or renew this connection's; False when the user has `cap` others."""
        ...

    def release(self, *, user_id: int, connection_id: str) -> None: ...


# KEYS[1]: the user's set; ARGV: connection id, cap, stale seconds. 1 when claimed, else 0.
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
    def key(user_id: int) -> str:
        return f"rehab:live-sockets:{user_id}"

    def claim(self, *, user_id: int, connection_id: str, cap: int, stale_s: float) -> bool:
        return bool(self._claim(keys=[self.key(user_id)], args=[connection_id, cap, stale_s]))

    def release(self, *, user_id: int, connection_id: str) -> None:
        self.redis.zrem(self.key(user_id), connection_id)


class LocalSocketRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, dict[str, float]] = {}  # user id -> connection id -> last claim

    def claim(self, *, user_id: int, connection_id: str, cap: int, stale_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            held = self._held.setdefault(user_id, {})
            for other, claimed_at in list(held.items()):
                if now - claimed_at >= stale_s:
                    del held[other]
            if connection_id not in held and len(held) >= cap:
                return False
            held[connection_id] = now
            return True

    def release(self, *, user_id: int, connection_id: str) -> None:
        with self._lock:
            held = self._held.get(user_id, {})
            held.pop(connection_id, None)
            if not held:
                self._held.pop(user_id, None)


@functools.cache
def _registry_for(redis_url: str) -> SocketRegistry:
    return RedisSocketRegistry(redis_url) if redis_url else LocalSocketRegistry()


def socket_registry() -> SocketRegistry:
    return _registry_for(settings.REDIS_URL)


def socket_claim(*, user_id: int, connection_id: str) -> bool:
    """Claim or renew a live socket's slot with the configured cap and stale time."""
    return socket_registry().claim(
        user_id=user_id,
        connection_id=connection_id,
        cap=settings.LIVE_MAX_SOCKETS_PER_USER,
        stale_s=settings.LIVE_SOCKET_STALE_S,
    )


def socket_release(*, user_id: int, connection_id: str) -> None:
    socket_registry().release(user_id=user_id, connection_id=connection_id)


def too_many_sockets_error() -> dict[str, Any]:
    """The ``error`` sent before the 4429 close."""
    cap = settings.LIVE_MAX_SOCKETS_PER_USER
    pages = f"{cap} live page{'s' if cap != 1 else ''}"
    return protocol.error_message(
        "too_many_sockets",
        f"You already have {pages} open, in another window or on another device. "
        "Close one of them first.",
    )
