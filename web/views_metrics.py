"""``/metrics``: the web process's metrics (and its local pose processes') for Prometheus.

Not public: a request is served when it comes straight from an address in METRICS_ALLOWED_NETS
(Prometheus inside the compose network; not through a proxy, whose own address would stand for
everybody behind it) or carries ``Authorization: Bearer <METRICS_TOKEN>``. Anyone else gets the
same 404 as for a page that does not exist.
"""

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from web import metrics

# Headers that a reverse proxy adds: such a request's REMOTE_ADDR is the proxy, not the client.
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not (from_allowed_network(request) or has_token(request)):
        raise Http404
    body, content_type = metrics.exposition(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


def from_allowed_network(request: HttpRequest) -> bool:
    if any(header in request.META for header in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(str(request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return any(address in network for network in settings.METRICS_ALLOWED_NETS)


def has_token(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())
