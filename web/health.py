"""Liveness and readiness probes on django-health-check (docs/operations.md, "Health checks").

- ``HealthView`` runs its checks concurrently and answers 200 when all pass, 503 otherwise: JSON
  when asked for (``Accept: application/json``), plain text else. A check is named by its class
  and a failure by its kind ("Unavailable"); the details (hosts, driver messages) go to the log
  only, since anyone may call these URLs.
- ``ReadinessView`` adds the dependencies of this process: the database, the cache (through
  Django's cache API) and, with REDIS_URL, Redis itself (the channel layer, the broker and the
  cache share it) and a Celery worker that answers a ping. Without Redis, Celery runs eagerly in
  the web process: nothing to wait for. The layers above add their own checks through
  ``checks`` (rehab/urls.py: the pose workers).
- ``HealthProbeMiddleware`` answers the probes before host validation, sessions, CSRF and
  sign-in: a probe comes from inside the network (a compose health check, an orchestrator, a load
  balancer) with whatever Host header it has, over plain HTTP (settings exempt ``health/`` from
  the HTTPS redirect). It sits inside the security headers' middleware, so the answers carry
  them. Nothing in an answer depends on the Host header, so accepting any is safe.
"""

import asyncio
import dataclasses
import datetime
from collections.abc import Callable, Iterator
from typing import Any

import redis.asyncio
from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.urls import Resolver404, ResolverMatch, resolve
from health_check import Cache, Database, HealthCheck
from health_check.base import HealthCheckResult
from health_check.contrib.celery import Ping
from health_check.contrib.redis import Redis
from health_check.views import HealthCheckView

# rehab/urls.py mounts the probes under this path.
URL_PREFIX = "health/"
# How long the Redis probe waits to connect and for its PONG.
REDIS_TIMEOUT_S = 2.0


@dataclasses.dataclass
class CeleryWorkers(Ping):
    """At least one Celery worker answers a ping: the first answer ends the wait."""

    limit: int | None = dataclasses.field(default=1, repr=False)


class HealthView(HealthCheckView):
    """Its checks' verdicts, 200 or 503 (the library's own view says 500 and renders HTML)."""

    checks = ()  # the library's default set (DNS, mail, storage...) is not what we probe

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with self.get_executor() as executor:
            results = await asyncio.gather(
                *(check.get_result(executor) for check in self.get_checks())
            )
        verdicts = {type(result.check).__name__: _verdict(result) for result in results}
        ready = all(result.error is None for result in results)
        status = 200 if ready else 503
        if request.get_preferred_type(["text/plain", "application/json"]) == "application/json":
            body = {"status": "ok" if ready else "unavailable", "checks": verdicts}
            return JsonResponse(body, status=status)
        lines = ["ok" if ready else "unavailable", *(f"{k}: {v}" for k, v in verdicts.items())]
        return HttpResponse(
            "\n".join(lines) + "\n", content_type="text/plain; charset=utf-8", status=status
        )


def _verdict(result: HealthCheckResult) -> str:
    return "OK" if result.error is None else result.error.message_type


class ReadinessView(HealthView):
    """Ready to serve: this process's dependencies, then the checks it was given."""

    def get_checks(self) -> Iterator[HealthCheck]:
        yield Database()
        yield Cache()
        if settings.REDIS_URL:
            yield Redis(client_factory=_redis_client)
            timeout = datetime.timedelta(seconds=settings.HEALTH_CELERY_TIMEOUT_S)
            yield CeleryWorkers(timeout=timeout)
        yield from super().get_checks()


def _redis_client() -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
    )


def probe_match(path: str) -> ResolverMatch | None:
    """Where `path` leads if that is a health view (a ``HealthView``), else None."""
    if not path.startswith(f"/{URL_PREFIX}"):
        return None
    try:
        match = resolve(path)
    except Resolver404:
        return None
    view_class = getattr(match.func, "view_class", None)
    is_probe = isinstance(view_class, type) and issubclass(view_class, HealthView)
    return match if is_probe else None


class HealthProbeMiddleware:
    """Hands the health URLs to their view before the rest of the middleware (see the module's
    docstring); every other request goes on unchanged. Works in both sync and async stacks."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        # The one security header that a middleware after this one adds (X_FRAME_OPTIONS).
        self.frame_options = XFrameOptionsMiddleware(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        match = probe_match(request.path_info)
        if match is None:
            return self.get_response(request)
        request.resolver_match = match
        answer = async_to_sync(match.func)(request, *match.args, **match.kwargs)
        return self.frame_options.process_response(request, answer)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        match = probe_match(request.path_info)
        if match is None:
            response: HttpResponseBase = await self.get_response(request)
            return response
        request.resolver_match = match
        answer = await match.func(request, *match.args, **match.kwargs)
        return self.frame_options.process_response(request, answer)
