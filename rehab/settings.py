"""Settings from the environment, with embedded defaults for a machine that has nothing installed.

REHAB_ENV=production switches on the deploy settings (no DEBUG, secure cookies, HSTS) and makes
DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS mandatory. Without DATABASE_URL the database is SQLite;
without REDIS_URL the channel layer is in memory and Celery runs its tasks eagerly in-process.
"""

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
    "patients",
    "sessions.apps.ExerciseSessionsConfig",
    "reports",
    "analysis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
        "task": "patients.tasks.alerts_refresh_all",
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
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
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
