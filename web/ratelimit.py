"""Rate limits on the expensive or sensitive views: sign-in, invitations, reports and exports.

Counters live in the default cache: Redis in production, so every web process counts against
the same limit; process memory on the embedded defaults. Each counter is a fixed window: the
first hit creates the key with `cache.add` (atomic: exactly one process creates it), later hits
`cache.incr` it (atomic in Redis and in LocMemCache). The window number is part of the key, so
a new window starts from zero and old keys expire on their own. While the cache's Redis is
unreachable the limits are not counted (requests are served, with a warning in the log).

The limits are settings (`RATE_LIMITS`, read on every request so that tests and operators can
change them): `{"login": {"limit": 20, "per_s": 60}, ...}`.
"""

import functools
import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from web.client_ip import client_ip
from web.outages import REDIS_AWAY

logger = logging.getLogger(__name__)

V = TypeVar("V", bound=Callable[..., Any])


@dataclass(frozen=True)
class Rate:
    limit: int
    per_s: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after_s: int


def rate_of(*, key: str) -> Rate:
    """The configured rate for `key`; a missing or malformed entry is a configuration error."""
    entry = getattr(settings, "RATE_LIMITS", {}).get(key)
    fields = entry if isinstance(entry, dict) else {}
    limit, per_s = fields.get("limit"), fields.get("per_s")
    if not (isinstance(limit, int) and isinstance(per_s, int) and limit >= 1 and per_s >= 1):
        raise ImproperlyConfigured(
            f"RATE_LIMITS[{key!r}] must be {{'limit': <int >= 1>, 'per_s': <int >= 1>}}, "
            f"not {entry!r}"
        )
    return Rate(limit=limit, per_s=per_s)


def rate_hit(*, key: str, identity: str, rate: Rate, now: float) -> Verdict:
    """Count one request of `identity` against `key` in the window holding `now`."""
    window = int(now // rate.per_s)
    retry_after_s = max(1, math.ceil((window + 1) * rate.per_s - now))
    cache_key = f"ratelimit:{key}:{identity}:{window}"
    # One second of slack: the key must not expire before its window ends.
    timeout = retry_after_s + 1
    if cache.add(cache_key, 1, timeout=timeout):
        count = 1
    else:
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr: this hit opens the window again
            cache.add(cache_key, 1, timeout=timeout)
            count = 1
    return Verdict(allowed=count <= rate.limit, count=count, retry_after_s=retry_after_s)


def identity_of(request: HttpRequest) -> str:
    """Signed-in users are counted per account (wherever they are); others per IP address."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_ip(request)}"


def too_many_requests(request: HttpRequest, *, retry_after_s: int) -> HttpResponse:
    """429 with Retry-After: JSON for clients that do not take HTML, a page for people."""
    wait = _in_words(retry_after_s)
    response: HttpResponse
    if request.accepts("text/html"):
        context = {"wait": wait, "retry_after_s": retry_after_s}
        response = render(request, "429.html", context, status=429)
    else:
        detail = f"Too many requests. Try again in {wait}."
        body = {"error": "rate_limited", "detail": detail, "retry_after_s": retry_after_s}
        response = JsonResponse(body, status=429)
    response["Retry-After"] = str(retry_after_s)
    return response


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def rate_limited(*, key: str, methods: Collection[str] | None = None) -> Callable[[V], V]:
    """Answer 429 once a user (or an anonymous IP) made more than RATE_LIMITS[key] requests in
    the current window. `methods` restricts counting to those HTTP methods (None: all)."""
    rate_of(key=key)  # a typo in the key fails at import, not at the first request
    counted = None if methods is None else frozenset(method.upper() for method in methods)

    def decorate(view: V) -> V:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if counted is None or request.method in counted:
                identity = identity_of(request)
                try:
                    verdict = rate_hit(
                        key=key, identity=identity, rate=rate_of(key=key), now=time.time()
                    )
                except REDIS_AWAY:
                    # The counters' Redis is away (a restart): serve rather than fail every
                    # sign-in and download meanwhile; the login lockout is in the database.
                    logger.warning("rate limit %r not counted: its cache is unreachable", key)
                    return view(request, *args, **kwargs)
                if not verdict.allowed:
                    logger.warning("rate limit %r exceeded by %s", key, identity)
                    return too_many_requests(request, retry_after_s=verdict.retry_after_s)
            return view(request, *args, **kwargs)

        return cast(V, wrapper)

    return decorate
