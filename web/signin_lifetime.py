"""How long a sign-in lasts: an idle timeout and an absolute lifetime.

Settings: SESSION_IDLE_TIMEOUT_S (env, 15 minutes), SESSION_MAX_AGE_S (env, 12 hours),
SESSION_IDLE_WARNING_S (the page's warning comes this long before, at most half the timeout).

A shared web helper (web/): the sign-in's clock knows nothing of the apps. web.apps connects the
login signal; the live sockets (sessions/live_users.py) ask the same `signin_ending` of the stored
session every few seconds.

- At sign-in (`user_logged_in`) the session records when it began and when it was last used.
  Django's own expiry (the stored row and the cookie) is set to the absolute end plus a short
  notice time, during which every request and socket is refused here but the login page can still
  say why the user was signed out.
- `SignInLifetimeMiddleware` signs out a session that is idle or past its end, with a message on
  the login page, and otherwise counts the request as activity.
- `session_keepalive`: GET tells the page how long the sign-in has left (without counting as
  activity); POST (with the CSRF token) counts as activity and answers 204. The page's warning
  (static/js/session-timeout.js) uses both; `session_timeout` gives it its numbers.
- A patient exercising on the live page sends no HTTP request for many minutes: the live socket's
  frames count as activity (sessions/live_users.py writes it at most once a minute).
"""

import datetime
import time
from enum import StrEnum
from typing import Any, Protocol

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.urls import reverse
from django.views.decorators.http import require_http_methods

SIGNED_IN_AT = "rehab_signed_in_at"  # epoch seconds
LAST_ACTIVITY = "rehab_last_activity"  # epoch seconds
# After the absolute end the stored session lives this much longer, refused everywhere, only so
# that the login page can still tell why the user was signed out.
END_NOTICE_S = 300


class Ending(StrEnum):
    IDLE = "idle"
    LIFETIME = "lifetime"


class SessionData(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


# --- The rules -----------------------------------------------------------------------------------
def signin_ending(*, data: SessionData, now: float) -> Ending | None:
    """Why a signed-in session has ended by `now`, or None while it holds."""
    signed_in_at = data.get(SIGNED_IN_AT)
    if signed_in_at is None:
        return None  # signed in before these rules: the middleware starts its clock
    if now - signed_in_at >= settings.SESSION_MAX_AGE_S:
        return Ending.LIFETIME
    if now - data.get(LAST_ACTIVITY, signed_in_at) >= settings.SESSION_IDLE_TIMEOUT_S:
        return Ending.IDLE
    return None


def signin_remaining(*, data: SessionData, now: float) -> tuple[float, Ending]:
    """Seconds until the session ends, and which limit ends it."""
    signed_in_at = data.get(SIGNED_IN_AT, now)
    idle_left = data.get(LAST_ACTIVITY, signed_in_at) + settings.SESSION_IDLE_TIMEOUT_S - now
    lifetime_left = signed_in_at + settings.SESSION_MAX_AGE_S - now
    if lifetime_left <= idle_left:
        return max(0.0, lifetime_left), Ending.LIFETIME
    return max(0.0, idle_left), Ending.IDLE


def session_clock_start(*, session: SessionBase, now: float) -> None:
    session[SIGNED_IN_AT] = now
    session[LAST_ACTIVITY] = now
    end = now + settings.SESSION_MAX_AGE_S + END_NOTICE_S
    session.set_expiry(datetime.datetime.fromtimestamp(end, tz=datetime.UTC))


def signin_touch(*, session: SessionBase, now: float, every_s: float) -> bool:
    """Record activity unless it was recorded less than `every_s` ago (each write is a database
    write; the deadline may come that much early). True when written."""
    if now - session.get(LAST_ACTIVITY, 0.0) < every_s:
        return False
    session[LAST_ACTIVITY] = now
    return True


def request_touch_every_s() -> float:
    """Requests write their activity at most every 10 s (1/60 of the timeout when shorter)."""
    return min(10.0, settings.SESSION_IDLE_TIMEOUT_S / 60)


def ending_message(ending: Ending) -> str:
    if ending is Ending.IDLE:
        return (
            f"You were signed out after {_duration(settings.SESSION_IDLE_TIMEOUT_S)} "
            "without activity."
        )
    return (
        f"You were signed out because sign-ins end after {_duration(settings.SESSION_MAX_AGE_S)}. "
        "Please sign in again."
    )


def _duration(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def on_user_logged_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """`user_logged_in` receiver (PatientsConfig.ready). login() has already given the session a
    new key (no session fixation)."""
    session_clock_start(session=request.session, now=time.time())


# --- HTTP ----------------------------------------------------------------------------------------
class SignInLifetimeMiddleware:
    """After AuthenticationMiddleware and MessageMiddleware (it signs out and leaves a message)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            refusal = self.check(request)
            if refusal is not None:
                return refusal
        response: HttpResponse = self.get_response(request)
        return response

    def check(self, request: HttpRequest) -> HttpResponse | None:
        now = time.time()
        session = request.session
        if session.get(SIGNED_IN_AT) is None:
            session_clock_start(session=session, now=now)
        ending = signin_ending(data=session, now=now)
        if ending is None:
            # Asking how long is left is not activity: an open page would never time out.
            if not (_is_keepalive(request) and request.method == "GET"):
                signin_touch(session=session, now=now, every_s=request_touch_every_s())
            return None
        logout(request)  # user_logged_out: the session's live sockets close too
        messages.info(request, ending_message(ending))
        if _is_keepalive(request):
            return HttpResponse(status=401)  # the page then goes to the login page itself
        if request.path == resolve_url(settings.LOGIN_URL):
            return None
        return redirect_to_login(request.get_full_path())


def _is_keepalive(request: HttpRequest) -> bool:
    return request.path == reverse("session_keepalive")


@require_http_methods(["GET", "POST"])
def session_keepalive(request: HttpRequest) -> HttpResponse:
    """GET: ``{"remaining_s": ..., "ends": "idle" | "lifetime"}``; POST: activity, 204.
    401 when not signed in (any more)."""
    if not request.user.is_authenticated:
        return HttpResponse(status=401)
    now = time.time()
    if request.method == "POST":
        signin_touch(session=request.session, now=now, every_s=0.0)
        return HttpResponse(status=204)
    remaining_s, ends = signin_remaining(data=request.session, now=now)
    return JsonResponse({"remaining_s": round(remaining_s, 1), "ends": ends.value})


def session_timeout(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the numbers base.html gives the warning script (signed-in pages)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    idle_s = settings.SESSION_IDLE_TIMEOUT_S
    return {
        "session_timeout": {
            "idle_s": idle_s,
            "warning_s": min(settings.SESSION_IDLE_WARNING_S, idle_s // 2),
        }
    }
