"""Settings from the environment, with embedded defaults for a machine that has nothing installed.

REHAB_ENV=production switches on the deploy settings (no DEBUG, secure cookies, HSTS) and makes
DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS mandatory. Without DATABASE_URL the database is SQLite;
without REDIS_URL the channel layer is in memory and Celery runs its tasks eagerly in-process.

Every variable is read and checked by environs (docs/operations.md lists them all): a wrong value
stops the start with one line that names the variable, its value and what it must be. Only the
process's environment is read, never a .env file (docker compose reads its own).
"""

import datetime
import ipaddress
import os
import re
import secrets
import sys
import zoneinfo
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import dj_database_url
import plotly
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError, ValidationError, validate

env = Env()


def _refuse(message: str) -> NoReturn:
    """Stop the start. The one line is what a person sees at manage.py, daphne or celery, not
    the forty frames of Django's lazy settings import above it: the process ends here anyway."""
    sys.tracebacklimit = 0
    raise ImproperlyConfigured(message) from None


def _shown(name: str) -> str:
    """The variable's value for an error message, a URL's password hidden."""
    return repr(re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", os.environ.get(name, "")))


_UNSET = object()


def _parsed(
    read: Callable[..., Any],
    name: str,
    default: Any,
    expected: str,
    *,
    empty: Any = _UNSET,
    **rules: Any,
) -> Any:
    """`read` (an environs parser) of `name` with its `rules`; `expected` says them in words. An
    empty variable is an unset one (compose passes `NAME:` without a value as empty) unless
    `empty` gives it a meaning of its own."""
    if os.environ.get(name) == "":
        return default if empty is _UNSET else empty
    try:
        return read(name, default, **rules)
    except EnvError:
        _refuse(f"{name} must be {expected}, not {_shown(name)}")


def _text(name: str, default: str) -> str:
    return _parsed(env.str, name, default, "text")


def _positive_int(name: str, default: int) -> int:
    return _parsed(
        env.int, name, default, "a positive whole number", validate=validate.Range(min=1)
    )


def _flag(name: str, default: bool) -> bool:
    return _parsed(env.bool, name, default, "1 or 0 (true or false)")


def _seconds(name: str, default: float) -> float:
    return _parsed(
        env.float,
        name,
        default,
        "a positive number of seconds",
        validate=validate.Range(min=0, min_inclusive=False),
    )


def _choice(name: str, default: str, choices: Sequence[str]) -> str:
    expected = f"one of {', '.join(choices)}"
    return _parsed(env.str, name, default, expected, validate=validate.OneOf(choices))


def _url_of(*schemes: str) -> Callable[[str], None]:
    """A rule: empty (not configured) or a URL of one of `schemes` (with a valid port)."""

    def check(url: str) -> None:
        if not url:
            return
        try:
            parts = urlsplit(url)
            valid = parts.scheme in schemes and (parts.port is None or parts.port > 0)
        except ValueError:  # a port that is not a number
            valid = False
        if not valid:
            raise ValidationError(f"not a URL of {schemes}")

    return check


def _time_zone(zone: str) -> None:
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("not a time zone") from None


def _origins(origins: list[str]) -> None:
    for origin in origins:
        _url_of("http", "https")(origin)


def _networks(networks: list[str]) -> None:
    try:
        for network in networks:
            ipaddress.ip_network(network.strip(), strict=False)
    except ValueError:
        raise ValidationError("not a network") from None


def _required(name: str) -> str:
    """A variable that production cannot do without; empty counts as missing."""
    try:
        value: str = env.str(name, validate=validate.Length(min=1))
    except EnvError:
        _refuse(f"{name} must be set in production")
    return value


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(_text("REHAB_VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = _choice("REHAB_ENV", "development", ("development", "production")) == "production"
DEBUG = not PRODUCTION and _flag("DJANGO_DEBUG", True)


def _local_secret_key() -> str:
    """A random key kept in var/ so that development logins survive restarts."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


if PRODUCTION:
    SECRET_KEY = _required("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = _required("DJANGO_ALLOWED_HOSTS").split(",")
else:
    SECRET_KEY = _text("DJANGO_SECRET_KEY", "") or _local_secret_key()
    ALLOWED_HOSTS = _text("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

CSRF_TRUSTED_ORIGINS = [
    origin
    for origin in _parsed(
        env.list,
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        [],
        "comma-separated origins with their scheme, e.g. https://rehab.example.org",
        validate=_origins,
    )
    if origin
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "health_check",  # django-health-check: /health/live and /health/ready (web/health.py)
    "web.apps.WebConfig",
    "patients",
    "sessions.apps.ExerciseSessionsConfig",
    "reports",
    "dashboard",
    "demo",
    "audit",
    "analysis",
    # The project package itself: its deployment checks (rehab/checks.py).
    "rehab.apps.RehabConfig",
]

MIDDLEWARE = [
    # First: every later middleware's log lines and responses carry the request's id.
    "web.request_id.request_id_middleware",
    "django.middleware.security.SecurityMiddleware",
    # Near the top, so that responses made by the middleware below get the headers too.
    "csp.middleware.CSPMiddleware",
    # Inside CSPMiddleware: adds to the policy; no-store on every response but static files.
    "web.security_headers.SecurityHeadersMiddleware",
    # Inside the headers: answers /health/* before host validation, sessions and sign-in.
    "web.health.HealthProbeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.AccessDeniedAuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "web.signin_lifetime.SignInLifetimeMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as its docs ask: turns a locked-out sign-in into the lockout page (web/lockout.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "rehab.urls"
ASGI_APPLICATION = "rehab.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "patients.context_processors.role",
                "web.signin_lifetime.session_timeout",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------------------------
# Not a setting of its own: Django's error pages would show its password (DATABASES hides it).
_database_url = _parsed(
    env.str,
    "DATABASE_URL",
    "",
    "a postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:///PATH URL",
    validate=_url_of("postgres", "postgresql", "sqlite"),
)
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Under ASGI every request may run in another thread: persistent connections leak, so
        # connections are not kept (CONN_MAX_AGE=0) and a psycopg pool makes opening them cheap.
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 10}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and Celery -------------------------------------------------------------
REDIS_URL = _parsed(
    env.str,
    "REDIS_URL",
    "",
    "a redis://HOST:PORT/DB or rediss:// URL",
    validate=_url_of("redis", "rediss"),
)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Explicit bounds: a slow consumer must drop, never grow a queue without limit.
            "CONFIG": {
                "hosts": [REDIS_URL],
                "capacity": 100,
                "expiry": 30,
                # Every socket of one web process shares one queue for the pose answers (its
                # "specific." channels): 100 fills once a process serves about 100 streams.
                "channel_capacity": {"specific.*": 1000},
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 100, "expiry": 30},
        }
    }

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
# A killed worker must lose nothing: acknowledge after the task ran, requeue on worker loss, and
# take one message at a time so a crash strands at most one.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# With Redis, a message taken by a worker that then died is handed out again after this long. The
# longest task (a two-year PDF report) takes seconds; a repeated task is harmless (idempotent).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _positive_int("CELERY_VISIBILITY_TIMEOUT_S", 300)
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# `celery beat` (one process: docker-compose.yml's celery-beat). Crontab times are clinic time:
# with CELERY_TIMEZONE unset, Celery follows Django's TIME_ZONE (below).
CELERY_BEAT_SCHEDULE = {
    # Therapist alerts, before the clinic's day starts (they are also refreshed after each session).
    "alerts-refresh-all": {
        "task": "sessions.tasks.alerts_refresh_all",
        "schedule": crontab(hour=6, minute=0),
    },
}

# --- Live sessions -------------------------------------------------------------------------------
# Pose workers: "channels" sends frames to `manage.py pose_worker` processes through the channel
# layer (needs Redis); "local" runs worker processes started by the web process.
POSE_TRANSPORT = _choice(
    "POSE_TRANSPORT", "channels" if REDIS_URL else "local", ("channels", "local")
)
POSE_LOCAL_WORKERS = _positive_int("POSE_LOCAL_WORKERS", 2)
# What runs the live pose workers' models (analysis.pose.engine): LiteRT, or MediaPipe's graphs.
POSE_RUNTIME = _choice("POSE_RUNTIME", "litert", ("litert", "mediapipe"))
# A frame whose pose has not come back by then is given up (a worker died or all are busy).
POSE_TIMEOUT_S = _seconds("POSE_TIMEOUT_S", 1.0)
# Per connection: the page sends at most 15 frames/s; the token bucket allows twice that.
LIVE_MAX_FRAMES_PER_S = 30.0
LIVE_FRAME_BURST = 10
# Live streams each pose worker serves at full rate (bench/live_load.py --ramp; docs/capacity.md):
# a new live session beyond that many per worker alive is told the service is busy (4503) and its
# page tries again after LIVE_BUSY_RETRY_S. 0: no limit.
LIVE_STREAMS_PER_POSE_WORKER = _parsed(
    env.int,
    "LIVE_STREAMS_PER_POSE_WORKER",
    3,
    "a whole number, 0 or more (0: no limit)",
    validate=validate.Range(min=0),
)
LIVE_BUSY_RETRY_S = 30

# --- Reports -------------------------------------------------------------------------------------
# The PDF reports' charts are drawn by this browser (kaleido); the e2e tests use it too.
CHROMIUM_PATH = _text("CHROMIUM_PATH", "/usr/bin/chromium")
REPORT_DEFAULT_DAYS = 30

# --- Auth ----------------------------------------------------------------------------------------
# Axes' backend goes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# An invitation (set-password link) stays valid for 7 days.
PASSWORD_RESET_TIMEOUT = 7 * 24 * 3600


# --- Session lifetime and live sockets ----------------------------------------------------------
# Health data on shared computers: a sign-in ends after SESSION_IDLE_TIMEOUT_S without activity
# (pages warn SESSION_IDLE_WARNING_S before) and SESSION_MAX_AGE_S after it began, whatever
# happens (web/signin_lifetime.py). Live sockets follow their sign-in (sessions/live_users.py)
# and a user holds at most LIVE_MAX_SOCKETS_PER_USER of them (sessions/socket_cap.py).
SESSION_IDLE_TIMEOUT_S = _positive_int("SESSION_IDLE_TIMEOUT_S", 15 * 60)
SESSION_MAX_AGE_S = _positive_int("SESSION_MAX_AGE_S", 12 * 3600)
SESSION_COOKIE_AGE = SESSION_MAX_AGE_S
SESSION_IDLE_WARNING_S = 120  # at most half the idle timeout
LIVE_MAX_SOCKETS_PER_USER = _positive_int("LIVE_MAX_SOCKETS_PER_USER", 2)
# Each live socket checks its sign-in this often (an ending that sends no event closes it by
# then) and so renews its slot; a slot not renewed for LIVE_SOCKET_STALE_S (its process died) is
# free.
LIVE_ACCESS_CHECK_S = 2.0
LIVE_SOCKET_STALE_S = 10.0
# Frames flowing count as activity, written to the session at most this often (and at most every
# quarter of the idle timeout).
LIVE_ACTIVITY_TOUCH_S = 60.0

# --- Uploaded recordings (sessions/uploads.py) ---------------------------------------------------
# A recording waits here (owner-only, random names) until it is analysed, then it is deleted. Web
# and Celery workers must share it (docker-compose.yml: the `uploads` volume).
UPLOAD_DIR = Path(_text("UPLOAD_DIR", str(VAR_DIR / "uploads")))
# Refused while streaming, before the rest is written; checked again on every decoded frame.
UPLOAD_MAX_BYTES = _positive_int("UPLOAD_MAX_MB", 200) * 1024 * 1024
UPLOAD_MAX_DURATION_S = _positive_int("UPLOAD_MAX_DURATION_S", 10 * 60)
UPLOAD_MAX_SIDE_PX = _positive_int("UPLOAD_MAX_SIDE_PX", 3840)  # 4K UHD; 8K is refused
# An analysis is stopped after this long (Celery's soft time limit), and a file or an unfinished
# upload older than UPLOAD_ORPHAN_AGE_S was left by a worker that died: swept (it must be longer).
UPLOAD_ANALYSIS_TIME_LIMIT_S = _positive_int("UPLOAD_ANALYSIS_TIME_LIMIT_S", 3600)
UPLOAD_ORPHAN_AGE_S = _positive_int("UPLOAD_ORPHAN_AGE_S", 2 * 3600)
if UPLOAD_ORPHAN_AGE_S <= UPLOAD_ANALYSIS_TIME_LIMIT_S:
    _refuse(
        f"UPLOAD_ORPHAN_AGE_S ({UPLOAD_ORPHAN_AGE_S}) must exceed UPLOAD_ANALYSIS_TIME_LIMIT_S "
        f"({UPLOAD_ANALYSIS_TIME_LIMIT_S})"
    )
CELERY_BEAT_SCHEDULE["uploads-sweep"] = {
    "task": "sessions.tasks.sweep_uploads",
    "schedule": crontab(minute="*/15"),
}

# --- Locale --------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = _parsed(
    env.str, "TIME_ZONE", "UTC", "a time zone such as Europe/Berlin", validate=_time_zone
)
USE_I18N = True
USE_TZ = True

# --- Static files --------------------------------------------------------------------------------
STATIC_URL = "static/"
# plotly.js comes from the installed plotly package (no CDN, no copy in the repository).
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
STATIC_ROOT = VAR_DIR / "static"
# In development WhiteNoise serves straight from the source folders (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "web.storage.CompressedManifestModulesStorage"  # WhiteNoise's, hashing JS imports too
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Email (invitations) -------------------------------------------------------------------------
EMAIL_BACKEND = _text("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = _text("EMAIL_HOST", "localhost")
EMAIL_PORT = _parsed(
    env.int, "EMAIL_PORT", 25, "a port, 1 to 65535", validate=validate.Range(min=1, max=65535)
)
EMAIL_HOST_USER = _text("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _text("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _flag("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = _text("DEFAULT_FROM_EMAIL", "rehab@localhost")

# --- Security ------------------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = _flag("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Client IP, cache, login lockout and rate limits ---------------------------------------------
# Reverse proxies in front of the web process that append to X-Forwarded-For (production expects
# the TLS proxy: 1). The client IP is the N-th address from the right; see web/client_ip.py.
TRUSTED_PROXY_COUNT = _parsed(
    env.int,
    "DJANGO_TRUSTED_PROXIES",
    1 if PRODUCTION else 0,
    "a number of proxies, 0 or more",
    validate=validate.Range(min=0),
)

# The rate-limit counters: in Redis every web process counts against the same limit.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Shares the Redis database with Channels and Celery: keep to our own keys.
            "KEY_PREFIX": "rehab-cache",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# django-axes: 5 failed sign-ins for one login from one IP lock that pair for 15 minutes after
# the last failure (the right password included). Attempts are rows in the database, so every
# process sees them. See web/lockout.py.
AXES_FAILURE_LIMIT = 5
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_COOLOFF_TIME = datetime.timedelta(minutes=15)
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"  # EmailLoginForm's field (the e-mail address)
AXES_USERNAME_CALLABLE = "web.lockout.login_username"
AXES_CLIENT_IP_CALLABLE = "web.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "web.lockout.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]
# No start-up banner: every manage.py command would print it on stderr (analyze_video's contract).
AXES_VERBOSE = False

# Requests per window, per signed-in user or else per client IP (web/ratelimit.py).
RATE_LIMITS = {
    "login": {"limit": 20, "per_s": 60},  # sign-in POSTs per IP, on top of axes' lockout
    "password_set": {"limit": 30, "per_s": 3600},  # invitation links opened or submitted per IP
    "report_new": {"limit": 10, "per_s": 3600},  # PDF reports requested per therapist
    "export": {"limit": 60, "per_s": 3600},  # CSV, FHIR and PDF downloads per user
    "upload": {"limit": 20, "per_s": 3600},  # recordings sent for analysis per user
}

# --- Metrics (web/metrics.py; docs/operations.md, "Metrics") -----------------------------------
# /metrics answers a request straight from one of these networks (not through a proxy) or one
# with "Authorization: Bearer <METRICS_TOKEN>"; anyone else gets a 404. The default: loopback and
# the private ranges of docker compose networks.
METRICS_ALLOWED_NETS = [
    ipaddress.ip_network(net.strip(), strict=False)
    for net in _parsed(
        env.list,
        "METRICS_ALLOWED_NETS",
        ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
        "comma-separated networks, e.g. 10.0.0.0/8,::1/128",
        empty=[],  # no network: only the token opens /metrics
        validate=_networks,
    )
    if net.strip()
]
METRICS_TOKEN = _text("METRICS_TOKEN", "")
# `manage.py pose_worker` and the Celery worker serve their metrics on this port (0: they don't).
METRICS_PORT = _parsed(
    env.int, "METRICS_PORT", 0, "a port, 1 to 65535, or 0", validate=validate.Range(0, 65535)
)
# Prometheus scrapes the web process by its compose name over plain HTTP inside the network.
ALLOWED_HOSTS += [host for host in _text("METRICS_HOSTS", "").split(",") if host]
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]

# --- Health checks (web/health.py, sessions/heartbeat.py; docs/operations.md) -------------------
# Each `manage.py pose_worker` refreshes its heartbeat key in Redis every POSE_HEARTBEAT_EVERY_S;
# the key expires POSE_HEARTBEAT_TTL_S after the last refresh (a dead or stuck worker).
POSE_HEARTBEAT_TTL_S = _seconds("POSE_HEARTBEAT_TTL_S", 10.0)
POSE_HEARTBEAT_EVERY_S = _seconds("POSE_HEARTBEAT_EVERY_S", 2.5)
if POSE_HEARTBEAT_EVERY_S >= POSE_HEARTBEAT_TTL_S:
    _refuse(
        f"POSE_HEARTBEAT_EVERY_S ({POSE_HEARTBEAT_EVERY_S}) must be below POSE_HEARTBEAT_TTL_S "
        f"({POSE_HEARTBEAT_TTL_S})"
    )
# /health/ready waits this long for a Celery worker to answer its ping.
HEALTH_CELERY_TIMEOUT_S = _seconds("HEALTH_CELERY_TIMEOUT_S", 1.0)
# Probes come over plain HTTP from inside the network (compose, an orchestrator).
SECURE_REDIRECT_EXEMPT += [r"^health/"]

# --- Content-Security-Policy (django-csp) --------------------------------------------------------
# No inline script anywhere (figures travel as json_script data, code in static/js). The live
# page's WebSocket origin is added per request (web/security_headers.py).
# No inline style either, but for the two <style> elements plotly.js adds itself, allowed by hash:
# an empty one it fills through the CSSOM (allowed by CSP), and MapLibre's stylesheet it injects on
# load. tests/rehab/test_security_headers.py recomputes them from the installed plotly.min.js.
PLOTLY_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # "" (plotly.js-style-global)
    "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='",  # .maplibregl-map{...} plotly.js 4.1.1
]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", *PLOTLY_STYLE_HASHES],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "media-src": ["'self'", "blob:"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# --- Logs (web/logs.py; docs/operations.md, "Logs") -----------------------------------------------
# Every process (daphne, pose workers, Celery) writes to stderr: one JSON object a line in
# production, plain text in development; each line with its request, connection or task id.
LOG_FORMAT = _choice("LOG_FORMAT", "json" if PRODUCTION else "text", ("json", "text"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "web.logs.ContextFilter"},
        "redact": {"()": "web.logs.RedactFilter"},
    },
    "formatters": {
        "json": {"()": "web.logs.JsonFormatter"},
        "text": {"()": "web.logs.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        }
    },
    "root": {
        "handlers": ["console"],
        "level": _parsed(
            env.log_level, "LOG_LEVEL", "INFO", "a level: DEBUG, INFO, WARNING, ERROR or CRITICAL"
        ),
    },
    "loggers": {
        # Django's own handlers go: its lines reach the root's handler alone, formatted alike.
        "django": {},
        # The PDF tool chain narrates every step (and every SVG property WeasyPrint does not use).
        **{
            name: {"level": "ERROR"}
            for name in ("weasyprint", "fontTools", "choreographer", "kaleido", "logistro")
        },
    },
}
