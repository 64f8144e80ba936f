"""Settings from the environment, with embedded defaults for a machine that has nothing installed.

REHAB_ENV=production switches on the deploy settings (no DEBUG, secure cookies, HSTS) and makes
DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS mandatory. Without DATABASE_URL the database is SQLite;
without REDIS_URL the channel layer is in memory and Celery runs its tasks eagerly in-process.
"""

import datetime
import os
import secrets
from pathlib import Path

import dj_database_url
import plotly
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("REHAB_VAR_DIR", BASE_DIR / "var"))

PRODUCTION = os.environ.get("REHAB_ENV", "development") == "production"
DEBUG = not PRODUCTION and os.environ.get("DJANGO_DEBUG", "1") == "1"


def _local_secret_key() -> str:
    """A random key kept in var/ so that development logins survive restarts."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


if PRODUCTION:
    try:
        SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
        ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
    except KeyError as missing:
        raise ImproperlyConfigured(f"{missing.args[0]} must be set in production") from None
else:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _local_secret_key()
    ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(
        ","
    )

CSRF_TRUSTED_ORIGINS = [
    origin for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if origin
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
    "django.middleware.security.SecurityMiddleware",
    # Near the top, so that responses made by the middleware below get the headers too.
    "csp.middleware.CSPMiddleware",
    # Inside CSPMiddleware: adds to the policy; no-store on every response but static files.
    "web.security_headers.SecurityHeadersMiddleware",
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
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=0)}
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
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Explicit bounds: a slow consumer must drop, never grow a queue without limit.
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 100, "expiry": 30},
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
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT_S", "300"))
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
POSE_TRANSPORT = os.environ.get("POSE_TRANSPORT") or ("channels" if REDIS_URL else "local")
POSE_LOCAL_WORKERS = int(os.environ.get("POSE_LOCAL_WORKERS", "2"))
# A frame whose pose has not come back by then is given up (a worker died or all are busy).
POSE_TIMEOUT_S = float(os.environ.get("POSE_TIMEOUT_S", "1.0"))
# Per connection: the page sends at most 15 frames/s; the token bucket allows twice that.
LIVE_MAX_FRAMES_PER_S = 30.0
LIVE_FRAME_BURST = 10

# --- Reports -------------------------------------------------------------------------------------
# The PDF reports' charts are drawn by this browser (kaleido); the e2e tests use it too.
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
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
def _positive_int_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive whole number, not {raw!r}")
    return value


SESSION_IDLE_TIMEOUT_S = _positive_int_from_env("SESSION_IDLE_TIMEOUT_S", 15 * 60)
SESSION_MAX_AGE_S = _positive_int_from_env("SESSION_MAX_AGE_S", 12 * 3600)
SESSION_COOKIE_AGE = SESSION_MAX_AGE_S
SESSION_IDLE_WARNING_S = 120  # at most half the idle timeout
LIVE_MAX_SOCKETS_PER_USER = _positive_int_from_env("LIVE_MAX_SOCKETS_PER_USER", 2)
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
UPLOAD_DIR = Path(os.environ.get("UPLOAD_DIR") or VAR_DIR / "uploads")
# Refused while streaming, before the rest is written; checked again on every decoded frame.
UPLOAD_MAX_BYTES = _positive_int_from_env("UPLOAD_MAX_MB", 200) * 1024 * 1024
UPLOAD_MAX_DURATION_S = _positive_int_from_env("UPLOAD_MAX_DURATION_S", 10 * 60)
UPLOAD_MAX_SIDE_PX = _positive_int_from_env("UPLOAD_MAX_SIDE_PX", 3840)  # 4K UHD; 8K is refused
# An analysis is stopped after this long (Celery's soft time limit), and a file or an unfinished
# upload older than UPLOAD_ORPHAN_AGE_S was left by a worker that died: swept (it must be longer).
UPLOAD_ANALYSIS_TIME_LIMIT_S = _positive_int_from_env("UPLOAD_ANALYSIS_TIME_LIMIT_S", 3600)
UPLOAD_ORPHAN_AGE_S = _positive_int_from_env("UPLOAD_ORPHAN_AGE_S", 2 * 3600)
if UPLOAD_ORPHAN_AGE_S <= UPLOAD_ANALYSIS_TIME_LIMIT_S:
    raise ImproperlyConfigured("UPLOAD_ORPHAN_AGE_S must exceed UPLOAD_ANALYSIS_TIME_LIMIT_S")
CELERY_BEAT_SCHEDULE["uploads-sweep"] = {
    "task": "sessions.tasks.sweep_uploads",
    "schedule": crontab(minute="*/15"),
}

# --- Locale --------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
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
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "0") == "1"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "rehab@localhost")

# --- Security ------------------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT", "1") == "1"
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Client IP, cache, login lockout and rate limits ---------------------------------------------
# Reverse proxies in front of the web process that append to X-Forwarded-For (production expects
# the TLS proxy: 1). The client IP is the N-th address from the right; see web/client_ip.py.
try:
    TRUSTED_PROXY_COUNT = int(os.environ.get("DJANGO_TRUSTED_PROXIES", "1" if PRODUCTION else "0"))
except ValueError:
    raise ImproperlyConfigured("DJANGO_TRUSTED_PROXIES must be a number of proxies") from None
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("DJANGO_TRUSTED_PROXIES must be 0 or more")

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # The PDF tool chain narrates every step (and every SVG property WeasyPrint does not use).
    "loggers": {
        name: {"level": "ERROR"}
        for name in ("weasyprint", "fontTools", "choreographer", "kaleido", "logistro")
    },
}
