"""The response headers that Django's SecurityMiddleware and django-csp do not set by themselves.

- `Cache-Control: no-store` on every response but static files. The app serves nothing public:
  its pages and downloads carry patient data (and the sign-in and invitation pages carry tokens),
  so no browser history, shared proxy or back-forward cache may keep a copy.
- The live page's WebSocket origin (ws://host or wss://host, the page's own host) in the CSP's
  connect-src. CSP level 3 browsers already let 'self' cover it; older ones (Safari before 15.4)
  need it spelt out, and naming the exact host is narrower than allowing any ws:/wss: URL.

It sits inside CSPMiddleware (after it in MIDDLEWARE), so its additions reach the policy.
"""

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.cache import add_never_cache_headers
from django.utils.deprecation import MiddlewareMixin


class SecurityHeadersMiddleware(MiddlewareMixin):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not request.path.startswith(str(settings.STATIC_URL)):
            add_never_cache_headers(response)
        _allow_own_websocket(request, response)
        return response


def _allow_own_websocket(request: HttpRequest, response: HttpResponseBase) -> None:
    try:
        host = request.get_host()
    except DisallowedHost:  # answered 400 already; nothing to allow
        return
    origin = f"{'wss' if request.is_secure() else 'ws'}://{host}"
    update = dict(getattr(response, "_csp_update", None) or {})
    existing = update.get("connect-src") or []
    update["connect-src"] = [*([existing] if isinstance(existing, str) else existing), origin]
    response._csp_update = update  # type: ignore[attr-defined]
