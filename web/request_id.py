"""X-Request-ID: the id that every log line of an HTTP request carries (web/logs.py), returned on
its response.

The id of the proxy in front (nginx's $request_id, a load balancer's trace id) is kept when it is
a safe token, so that the proxy's access log and ours name a request alike; a missing or unsafe
one is replaced by a new id. The middleware sits first in settings.MIDDLEWARE so that the lines
and responses of every other middleware (the HTTPS redirect included) have the id too.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from web import logs

HEADER = "X-Request-ID"


def request_id_of(request: HttpRequest) -> str:
    """The proxy's id when safe, else a new one; left on the request for Django's own lines."""
    request_id = logs.safe_id(request.headers.get(HEADER)) or logs.new_id()
    request.META[logs.REQUEST_ID_META] = request_id
    return request_id


@sync_and_async_middleware
def request_id_middleware(get_response: Callable[[HttpRequest], Any]) -> Callable[..., Any]:
    if iscoroutinefunction(get_response):
        respond: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = get_response

        async def middleware_async(request: HttpRequest) -> HttpResponseBase:
            with logs.bound(logs.REQUEST_ID, request_id_of(request)) as request_id:
                response = await respond(request)
            response[HEADER] = request_id
            return response

        return middleware_async

    def middleware(request: HttpRequest) -> HttpResponseBase:
        with logs.bound(logs.REQUEST_ID, request_id_of(request)) as request_id:
            response: HttpResponseBase = get_response(request)
        response[HEADER] = request_id
        return response

    return middleware
