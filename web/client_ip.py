"""The client's IP address: one answer for the login lockout (django-axes) and the rate limits.

Behind `TRUSTED_PROXY_COUNT` reverse proxies, REMOTE_ADDR is the nearest proxy, so every patient
would share one address: one attacker could lock everybody out. Each proxy appends the address
it saw to X-Forwarded-For, so the client is the N-th entry from the right. Entries further left
are whatever the client sent and are never trusted (taking the left-most one would let anybody
pick a fresh address for every request and walk past the limits).
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = str(request.META.get("REMOTE_ADDR") or "")
    proxies: int = settings.TRUSTED_PROXY_COUNT
    if proxies == 0:
        return remote
    forwarded = [
        hop.strip()
        for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if hop.strip()
    ]
    if len(forwarded) < proxies:
        # Not through the configured proxy chain (a health check, a misconfiguration).
        return remote
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
