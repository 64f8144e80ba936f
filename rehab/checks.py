"""The project's own deployment checks: `manage.py check --deploy` runs them next to Django's.

Each guards a setting whose failure is silent until it hurts (docs/architecture.md, "Facts
about the stack"):

- rehab.E001/E002: the WebSocket router sits behind an origin validator that does not admit
  every origin (the session cookie goes with any page's WebSocket: without the origin check any
  web site could drive a patient's live session, cross-site WebSocket hijacking).
- rehab.E003/E004: PostgreSQL under ASGI keeps no connection per thread (CONN_MAX_AGE=0: each
  request may run in another thread, and persistent connections leak) and uses a pool instead.
- rehab.E005: daphne >= 4.2.2, which refuses WebSocket messages over 1 MiB by default: the live
  protocol's own limits (sessions.protocol) are checked on messages daphne has already taken in.
- rehab.E006: a Redis channel layer has an explicit capacity and expiry (a slow consumer must
  drop messages, never grow a queue without limit).
- rehab.E007/E008: Celery acknowledges a task after it ran and requeues it when its worker dies
  (a killed worker loses no repetition).

The inspections are functions of what they inspect (``*_problems``), so that tests can hand them
broken configurations; the registered checks apply them to the live settings and application.
"""

import re
import warnings
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

TAG = "rehab"
DAPHNE_MINIMUM = (4, 2, 2)
REDIS_LAYERS = ("channels_redis.core.RedisChannelLayer", "channels_redis.pubsub.")
# Attributes through which ASGI wrappers hold the application they wrap: channels' validators
# ("application"), its middleware ("inner"), and the common "app".
_WRAPPED = ("application", "inner", "app")


# --- WebSocket origin -----------------------------------------------------------------------------
def websocket_chain(app: Any) -> list[Any]:
    """The websocket application and every application it wraps, outermost first."""
    chain: list[Any] = []
    while app is not None and len(chain) < 32 and all(app is not seen for seen in chain):
        chain.append(app)
        app = next((getattr(app, name) for name in _WRAPPED if hasattr(app, name)), None)
    return chain


def origin_problems(router: Any) -> list[CheckMessage]:
    """``router``: the project's ProtocolTypeRouter."""
    websocket = getattr(router, "application_mapping", {}).get("websocket")
    if websocket is None:
        return []  # no WebSocket endpoint, nothing to guard
    chain = websocket_chain(websocket)
    validators = [app for app in chain if isinstance(app, OriginValidator)]
    names = " -> ".join(type(app).__name__ for app in chain)
    if not validators:
        return [
            Error(
                f"The websocket application is not behind an origin validator ({names}).",
                hint="Wrap it in channels.security.websocket.AllowedHostsOriginValidator in "
                "rehab/asgi.py: browsers send the session cookie with any site's WebSocket.",
                id="rehab.E001",
            )
        ]
    if any("*" in validator.allowed_origins for validator in validators):
        return [
            Error(
                "The websocket origin validator admits every origin ('*').",
                hint="List the site's own hosts (DJANGO_ALLOWED_HOSTS), not '*'.",
                id="rehab.E002",
            )
        ]
    return []


@register(TAG, deploy=True)
def check_websocket_origin(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    with warnings.catch_warnings():
        # Importing builds the HTTP handler too, whose WhiteNoise warns when collectstatic has
        # not run (a checkout, as in CI; the image runs it): not what this check is about.
        warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
        from rehab import asgi  # the real application, as daphne serves it

    return origin_problems(asgi.application)


# --- Database connections -------------------------------------------------------------------------
def database_problems(databases: Mapping[str, Mapping[str, Any]]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for alias, database in databases.items():
        if database.get("ENGINE") != "django.db.backends.postgresql":
            continue
        if database.get("CONN_MAX_AGE", 0) != 0:
            errors.append(
                Error(
                    f"DATABASES[{alias!r}] keeps connections (CONN_MAX_AGE="
                    f"{database['CONN_MAX_AGE']!r}) under ASGI.",
                    hint="Set CONN_MAX_AGE=0: each request may run in another thread, and "
                    "persistent connections of finished threads are never closed.",
                    id="rehab.E003",
                )
            )
        if not database.get("OPTIONS", {}).get("pool"):
            errors.append(
                Error(
                    f"DATABASES[{alias!r}] opens a new PostgreSQL connection for every request.",
                    hint="Enable psycopg's pool: OPTIONS={'pool': True} or its size as a dict.",
                    id="rehab.E004",
                )
            )
    return errors


@register(TAG, deploy=True)
def check_database_connections(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return database_problems(settings.DATABASES)


# --- Daphne ---------------------------------------------------------------------------------------
def release_of(text: str) -> tuple[int, ...]:
    """(4, 2, 2) of "4.2.2" (or of "4.2.2.post1"): the numeric release, enough to compare."""
    match = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def daphne_problems(installed: str | None) -> list[CheckMessage]:
    """``installed``: daphne's installed version, None when it is not installed."""
    wanted = ".".join(map(str, DAPHNE_MINIMUM))
    if installed is not None and release_of(installed) >= DAPHNE_MINIMUM:
        return []
    found = "not installed" if installed is None else f"version {installed}"
    return [
        Error(
            f"daphne is {found}; the live sessions need daphne >= {wanted}.",
            hint="Upgrade daphne: the live sessions rely on its default limit of 1 MiB per "
            "WebSocket message.",
            id="rehab.E005",
        )
    ]


@register(TAG, deploy=True)
def check_daphne_version(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        installed: str | None = version("daphne")
    except PackageNotFoundError:
        installed = None
    return daphne_problems(installed)


# --- Channel layer --------------------------------------------------------------------------------
def channel_layer_problems(layers: Mapping[str, Mapping[str, Any]]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for alias, layer in layers.items():
        if not str(layer.get("BACKEND", "")).startswith(REDIS_LAYERS):
            continue
        missing = _missing(("capacity", "expiry"), layer.get("CONFIG") or {})
        if missing:
            errors.append(
                Error(
                    f"CHANNEL_LAYERS[{alias!r}] leaves {' and '.join(missing)} to the library's "
                    "defaults.",
                    hint="Set CONFIG['capacity'] and CONFIG['expiry'] explicitly: how many "
                    "messages a channel holds and for how long, before they are dropped.",
                    id="rehab.E006",
                )
            )
    return errors


def _missing(keys: Iterable[str], config: Mapping[str, Any]) -> list[str]:
    return [key for key in keys if config.get(key) is None]


@register(TAG, deploy=True)
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return channel_layer_problems(getattr(settings, "CHANNEL_LAYERS", {}))


# --- Celery ---------------------------------------------------------------------------------------
@register(TAG, deploy=True)
def check_celery_delivery(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if getattr(settings, "CELERY_TASK_ACKS_LATE", False) is not True:
        errors.append(
            Error(
                "Celery acknowledges tasks before running them (CELERY_TASK_ACKS_LATE).",
                hint="Set CELERY_TASK_ACKS_LATE = True: a worker killed mid-task must not have "
                "taken the task off the queue for good.",
                id="rehab.E007",
            )
        )
    if getattr(settings, "CELERY_TASK_REJECT_ON_WORKER_LOST", False) is not True:
        errors.append(
            Error(
                "Celery does not requeue the task of a worker that died "
                "(CELERY_TASK_REJECT_ON_WORKER_LOST).",
                hint="Set CELERY_TASK_REJECT_ON_WORKER_LOST = True; the tasks are idempotent, "
                "so running one again is safe.",
                id="rehab.E008",
            )
        )
    return errors
