"""Settings from the environment (rehab/settings.py): the embedded defaults with nothing set, and a
wrong value stops the start with one line naming the variable, its value and what it must be.
Each case starts a fresh process, as daphne, a pose worker or Celery would."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "REHAB_ENV": "production",
    "DJANGO_SECRET_KEY": "x" * 50,
    "DJANGO_ALLOWED_HOSTS": "rehab.example.org",
}
SHOWN = [
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "REDIS_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "CELERY_BROKER_TRANSPORT_OPTIONS",
    "POSE_TRANSPORT",
    "POSE_LOCAL_WORKERS",
    "POSE_TIMEOUT_S",
    "SESSION_IDLE_TIMEOUT_S",
    "SESSION_MAX_AGE_S",
    "LIVE_MAX_SOCKETS_PER_USER",
    "UPLOAD_MAX_BYTES",
    "UPLOAD_MAX_DURATION_S",
    "UPLOAD_MAX_SIDE_PX",
    "UPLOAD_ANALYSIS_TIME_LIMIT_S",
    "UPLOAD_ORPHAN_AGE_S",
    "TIME_ZONE",
    "EMAIL_PORT",
    "EMAIL_USE_TLS",
    "TRUSTED_PROXY_COUNT",
    "LOG_FORMAT",
]
SHOW = (
    "import json, django; django.setup(); from django.conf import settings; "
    f"shown = {{name: getattr(settings, name) for name in {SHOWN!r}}}; "
    "shown['ENGINE'] = settings.DATABASES['default']['ENGINE']; "
    "shown['LOG_LEVEL'] = settings.LOGGING['root']['level']; "
    "print(json.dumps(shown))"
)


def start(
    code: str = "import django; django.setup()", **env: str
) -> subprocess.CompletedProcess[str]:
    """A fresh process with only `env` set (and what any process needs to run)."""
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/"),
        "DJANGO_SETTINGS_MODULE": "rehab.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_with(**env: str) -> dict[str, Any]:
    done = start(SHOW, **env)
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def refusal(**env: str) -> str:
    """The one line a refused start prints."""
    done = start(**env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    prefix = "django.core.exceptions.ImproperlyConfigured: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0].removeprefix(prefix)


# --- Defaults ------------------------------------------------------------------------------------
def test_with_nothing_set_the_embedded_defaults_apply() -> None:
    assert settings_with() == {
        "DEBUG": True,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost", "testserver"],
        "CSRF_TRUSTED_ORIGINS": [],
        "REDIS_URL": "",
        "CELERY_TASK_ALWAYS_EAGER": True,
        "CELERY_BROKER_TRANSPORT_OPTIONS": {"visibility_timeout": 300},
        "POSE_TRANSPORT": "local",
        "POSE_LOCAL_WORKERS": 2,
        "POSE_TIMEOUT_S": 1.0,
        "SESSION_IDLE_TIMEOUT_S": 900,
        "SESSION_MAX_AGE_S": 43200,
        "LIVE_MAX_SOCKETS_PER_USER": 2,
        "UPLOAD_MAX_BYTES": 200 * 1024 * 1024,
        "UPLOAD_MAX_DURATION_S": 600,
        "UPLOAD_MAX_SIDE_PX": 3840,
        "UPLOAD_ANALYSIS_TIME_LIMIT_S": 3600,
        "UPLOAD_ORPHAN_AGE_S": 7200,
        "TIME_ZONE": "UTC",
        "EMAIL_PORT": 25,
        "EMAIL_USE_TLS": False,
        "TRUSTED_PROXY_COUNT": 0,
        "LOG_FORMAT": "text",
        "ENGINE": "django.db.backends.sqlite3",
        "LOG_LEVEL": "INFO",
    }


def test_values_are_parsed_and_an_empty_variable_is_an_unset_one() -> None:
    shown = settings_with(
        REDIS_URL="redis://127.0.0.1:6379/15",
        DATABASE_URL="postgres://rehab:secret@db.invalid:5432/rehab",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://rehab.example.org,https://clinic.example.org",
        POSE_TIMEOUT_S="0.5",
        EMAIL_USE_TLS="true",
        TIME_ZONE="Europe/Berlin",
        LOG_LEVEL="warning",
        UPLOAD_MAX_MB="",
        POSE_TRANSPORT="",
    )
    assert shown["ENGINE"] == "django.db.backends.postgresql"
    assert shown["CELERY_TASK_ALWAYS_EAGER"] is False
    assert shown["POSE_TRANSPORT"] == "channels"  # the default with Redis
    assert shown["CSRF_TRUSTED_ORIGINS"] == [
        "https://rehab.example.org",
        "https://clinic.example.org",
    ]
    assert (shown["POSE_TIMEOUT_S"], shown["EMAIL_USE_TLS"]) == (0.5, True)
    assert (shown["TIME_ZONE"], shown["LOG_LEVEL"]) == ("Europe/Berlin", 30)
    assert shown["UPLOAD_MAX_BYTES"] == 200 * 1024 * 1024


def test_production_defaults_to_one_proxy_json_logs_and_no_debug() -> None:
    shown = settings_with(**PRODUCTION)
    assert (shown["DEBUG"], shown["TRUSTED_PROXY_COUNT"], shown["LOG_FORMAT"]) == (False, 1, "json")
    assert shown["ALLOWED_HOSTS"][0] == "rehab.example.org"


# --- A wrong value stops the start ---------------------------------------------------------------
@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("SESSION_IDLE_TIMEOUT_S", "abc", "a positive whole number"),
        ("UPLOAD_MAX_MB", "-5", "a positive whole number"),
        ("POSE_LOCAL_WORKERS", "0", "a positive whole number"),
        ("CELERY_VISIBILITY_TIMEOUT_S", "5m", "a positive whole number"),
        ("POSE_TIMEOUT_S", "nan", "a positive number of seconds"),
        ("POSE_TRANSPORT", "grpc", "one of channels, local"),
        ("POSE_RUNTIME", "onnx", "one of litert, mediapipe"),
        ("LOG_FORMAT", "xml", "one of json, text"),
        ("REHAB_ENV", "prod", "one of development, production"),
        ("EMAIL_USE_TLS", "maybe", "1 or 0 (true or false)"),
        ("EMAIL_PORT", "70000", "a port, 1 to 65535"),
        ("TIME_ZONE", "Mars/Olympus_Mons", "a time zone such as Europe/Berlin"),
        ("LOG_LEVEL", "LOUD", "a level: DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ("REDIS_URL", "http://redis:6379/0", "a redis://HOST:PORT/DB or rediss:// URL"),
        ("REDIS_URL", "redis://redis:port/0", "a redis://HOST:PORT/DB or rediss:// URL"),
        (
            "DJANGO_CSRF_TRUSTED_ORIGINS",
            "rehab.example.org",
            "comma-separated origins with their scheme, e.g. https://rehab.example.org",
        ),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_variable_its_value_and_the_rule(
    name: str, value: str, expected: str
) -> None:
    assert refusal(**{name: value}) == f"{name} must be {expected}, not {value!r}"


def test_a_wrong_database_url_is_shown_without_its_password() -> None:
    done = start(DATABASE_URL="mysql://rehab:s3cret@db.invalid/rehab")
    assert "s3cret" not in done.stderr
    assert refusal(DATABASE_URL="mysql://rehab:s3cret@db.invalid/rehab") == (
        "DATABASE_URL must be a postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:///PATH URL, "
        "not 'mysql://rehab:***@db.invalid/rehab'"
    )


def test_manage_py_check_says_the_same_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "TIME_ZONE": "x"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "django.core.exceptions.ImproperlyConfigured: "
        "TIME_ZONE must be a time zone such as Europe/Berlin, not 'x'"
    ]


def test_the_orphan_age_must_exceed_the_analysis_time_limit() -> None:
    assert refusal(UPLOAD_ANALYSIS_TIME_LIMIT_S="600", UPLOAD_ORPHAN_AGE_S="600") == (
        "UPLOAD_ORPHAN_AGE_S (600) must exceed UPLOAD_ANALYSIS_TIME_LIMIT_S (600)"
    )


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"])
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_production_needs_a_secret_key_and_allowed_hosts(missing: str, how: str) -> None:
    env = {name: value for name, value in PRODUCTION.items() if name != missing}
    if how == "empty":
        env[missing] = ""
    assert refusal(**env) == f"{missing} must be set in production"


# --- docs/operations.md --------------------------------------------------------------------------
READS = re.compile(
    r"(?:_parsed\(\s*env\.\w+,|_positive_int\(|_seconds\(|_flag\(|_choice\(|_text\(|_required\()"
    r'\s*"([A-Z][A-Z0-9_]*)"'
)


def test_every_variable_read_is_in_the_settings_table_of_the_operations_guide() -> None:
    read = set(READS.findall((ROOT / "rehab" / "settings.py").read_text()))
    guide = (ROOT / "docs" / "operations.md").read_text()
    table = guide.split("\n## Settings\n")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", table, re.MULTILINE))
    assert len(read) > 30
    assert read == documented
