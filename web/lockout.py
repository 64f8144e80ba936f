"""How django-axes sees a sign-in and what a locked-out person is told.

Axes counts failed sign-ins per (login, client IP) and, after AXES_FAILURE_LIMIT of them, refuses
that pair, even with the right password, until AXES_COOLOFF_TIME has passed since the last
failure. Keying on the pair means a stranger cannot lock a patient out from elsewhere; the
per-IP rate limit on the sign-in form (web.ratelimit) covers one address trying many logins.
"""

import datetime
import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def login_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """The login as EmailLoginForm reads it (trimmed, lower case): "Anna@Clinic.org " and
    "anna@clinic.org" are the same account, so they must share one failure count."""
    raw = (credentials or {}).get("username") or request.POST.get("username")
    if not raw:
        return None
    return str(raw).strip().lower()


def lockout_response(request: HttpRequest, *args: Any) -> HttpResponse:
    """429 with the time the sign-in opens again.

    Axes passes `(request, original_response, credentials)`, or in its async path only
    `(request, credentials)`: neither is needed. The page never names the account, and reads
    the same whether the login exists or not (no user enumeration)."""
    cool_off: datetime.timedelta = settings.AXES_COOLOFF_TIME
    # Every failure (also during a lockout) restarts the cool-off, and this request just failed.
    until = timezone.localtime(timezone.now() + cool_off)
    seconds = math.ceil(cool_off.total_seconds())
    context = {
        "until": until,
        "minutes": math.ceil(seconds / 60),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
