"""The project's own deployment checks (rehab/checks.py): each passes on the real configuration
and fails with its id when what it inspects is broken; `manage.py check --deploy --fail-level
WARNING` passes with the production settings, as `make deploy-check` runs it."""

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.core.checks import CheckMessage
from django.core.checks.registry import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from rehab import asgi, checks
from sessions.routing import websocket_urlpatterns

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_ENV = {
    "REHAB_ENV": "production",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "rehab.example.org",
    # Never reached: the checks read the settings, they open no connection.
    "DATABASE_URL": "postgres://rehab:deploy-check@db.invalid:5432/rehab",
    "REDIS_URL": "redis://redis.invalid:6379/0",
}
POSTGRES = {"ENGINE": "django.db.backends.postgresql", "NAME": "rehab", "CONN_MAX_AGE": 0}
REDIS_LAYER = "channels_redis.core.RedisChannelLayer"


def ids(messages: list[CheckMessage]) -> list[str | None]:
    return [message.id for message in messages]


def router(websocket: Any) -> ProtocolTypeRouter:
    return ProtocolTypeRouter({"http": asgi.django_asgi_app, "websocket": websocket})


def run_deploy_checks() -> list[str | None]:
    return ids(registry.run_checks(tags=[checks.TAG], include_deployment_checks=True))


def test_the_project_checks_are_registered_for_deployment_only() -> None:
    deploy_only = registry.get_checks(include_deployment_checks=True)
    always = registry.get_checks(include_deployment_checks=False)
    ours = {
        checks.check_websocket_origin,
        checks.check_database_connections,
        checks.check_daphne_version,
        checks.check_channel_layers,
        checks.check_celery_delivery,
    }
    assert ours <= set(deploy_only)
    assert not ours & set(always)


def test_every_project_check_passes_on_the_configuration_under_test() -> None:
    # The suite runs on SQLite and in-memory layers, and again on PostgreSQL and Redis (CI).
    assert run_deploy_checks() == []


# --- rehab.E001/E002: the WebSocket origin --------------------------------------------------------
def test_the_real_websocket_stack_is_behind_an_origin_validator() -> None:
    chain = checks.websocket_chain(asgi.application.application_mapping["websocket"])
    assert isinstance(chain[0], OriginValidator)
    assert isinstance(chain[-1], URLRouter)
    assert checks.origin_problems(asgi.application) == []


def test_a_websocket_stack_without_an_origin_validator_fails_with_e001(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(asgi, "application", router(AuthMiddlewareStack(URLRouter([]))))
    assert run_deploy_checks() == ["rehab.E001"]


def test_an_origin_validator_deep_inside_the_stack_still_counts() -> None:
    inner = AuthMiddlewareStack(OriginValidator(URLRouter(websocket_urlpatterns), ["a.example"]))
    assert checks.origin_problems(router(inner)) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: OriginValidator(URLRouter([]), ["*"]),
        lambda: AllowedHostsOriginValidator(URLRouter([])),  # ALLOWED_HOSTS = ["*"] below
    ],
    ids=["explicit-star", "allowed-hosts-star"],
)
def test_an_origin_validator_that_admits_every_origin_fails_with_e002(make: Any) -> None:
    with override_settings(ALLOWED_HOSTS=["*"]):
        websocket = make()
    assert ids(checks.origin_problems(router(websocket))) == ["rehab.E002"]


def test_a_wrapper_chain_that_loops_back_ends_instead_of_hanging() -> None:
    class Loop:
        def __init__(self) -> None:
            self.inner: Any = self

    assert ids(checks.origin_problems(router(Loop()))) == ["rehab.E001"]


# --- rehab.E003/E004: PostgreSQL under ASGI ------------------------------------------------------
def test_postgres_with_no_persistent_connections_and_a_pool_passes() -> None:
    for pool in (True, {"min_size": 1, "max_size": 10}):
        databases = {"default": {**POSTGRES, "OPTIONS": {"pool": pool}}}
        assert checks.database_problems(databases) == []


def test_the_production_database_settings_pass() -> None:
    """rehab/settings.py's DATABASE_URL branch, as production loads it."""
    code = (
        "from django.conf import settings; from rehab import checks; "
        "print(settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']"
        "['CONN_MAX_AGE'], checks.database_problems(settings.DATABASES))"
    )
    output = _manage_py_shell(code)
    assert output.split() == ["django.db.backends.postgresql", "0", "[]"]


def test_persistent_postgres_connections_fail_with_e003() -> None:
    databases = {"default": {**POSTGRES, "CONN_MAX_AGE": 60, "OPTIONS": {"pool": True}}}
    assert ids(checks.database_problems(databases)) == ["rehab.E003"]


@pytest.mark.parametrize("options", [{}, {"pool": False}, {"pool": None}])
def test_postgres_without_a_pool_fails_with_e004(options: dict[str, Any]) -> None:
    databases = {"default": {**POSTGRES, "OPTIONS": options}}
    assert ids(checks.database_problems(databases)) == ["rehab.E004"]


def test_every_postgres_alias_is_checked_and_sqlite_is_left_alone() -> None:
    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x", "CONN_MAX_AGE": 60},
        "replica": {**POSTGRES, "CONN_MAX_AGE": None},
    }
    assert ids(checks.database_problems(databases)) == ["rehab.E003", "rehab.E004"]


# --- rehab.E005: daphne ---------------------------------------------------------------------------
def test_the_installed_daphne_passes() -> None:
    assert checks.check_daphne_version() == []


@pytest.mark.parametrize("installed", ["4.2.2", "4.2.3", "4.10.0", "5.0", "4.2.2.post1"])
def test_daphne_from_4_2_2_on_passes(installed: str) -> None:
    assert checks.daphne_problems(installed) == []


@pytest.mark.parametrize("installed", ["4.2.1", "4.1.2", "3.0.2", "4.2", None])
def test_daphne_before_4_2_2_or_missing_fails_with_e005(installed: str | None) -> None:
    assert ids(checks.daphne_problems(installed)) == ["rehab.E005"]


def test_an_old_installed_daphne_fails_the_deploy_check_with_e005(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checks, "version", lambda name: "4.1.0" if name == "daphne" else "")
    assert run_deploy_checks() == ["rehab.E005"]


# --- rehab.E006: the channel layer's bounds -------------------------------------------------------
def redis_layer(**config: Any) -> dict[str, Any]:
    return {"default": {"BACKEND": REDIS_LAYER, "CONFIG": {"hosts": ["redis://x"], **config}}}


def test_a_redis_layer_with_capacity_and_expiry_passes() -> None:
    with override_settings(CHANNEL_LAYERS=redis_layer(capacity=100, expiry=30)):
        assert run_deploy_checks() == []


@pytest.mark.parametrize("config", [{}, {"capacity": 100}, {"expiry": 30}])
def test_a_redis_layer_without_explicit_bounds_fails_with_e006(config: dict[str, Any]) -> None:
    with override_settings(CHANNEL_LAYERS=redis_layer(**config)):
        assert run_deploy_checks() == ["rehab.E006"]


def test_the_redis_pubsub_layer_is_checked_too() -> None:
    layers = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}}
    assert ids(checks.channel_layer_problems(layers)) == ["rehab.E006"]


def test_the_in_memory_layer_is_left_alone() -> None:
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert checks.channel_layer_problems(layers) == []


# --- rehab.E007/E008: Celery delivery -------------------------------------------------------------
@pytest.mark.parametrize(
    "setting, error",
    [("CELERY_TASK_ACKS_LATE", "rehab.E007"), ("CELERY_TASK_REJECT_ON_WORKER_LOST", "rehab.E008")],
)
@pytest.mark.parametrize("value", [False, None, "True"])
def test_celery_delivery_settings_other_than_true_fail(
    setting: str, error: str, value: Any
) -> None:
    with override_settings(**{setting: value}):
        assert run_deploy_checks() == [error]


def test_a_broken_setting_makes_manage_py_check_deploy_fail_with_its_id() -> None:
    with (
        override_settings(CELERY_TASK_ACKS_LATE=False),
        pytest.raises(SystemCheckError, match=r"rehab\.E007"),
    ):
        call_command("check", deploy=True, fail_level="WARNING", tags=[checks.TAG])


# --- The whole deploy check, as `make deploy-check` runs it ---------------------------------------
def _manage_py(*args: str) -> subprocess.CompletedProcess[str]:
    # A production process's environment, not the test run's (the browser tests set
    # DJANGO_ALLOW_ASYNC_UNSAFE, which Django's own deploy check rightly refuses).
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/"),
        **PRODUCTION_ENV,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _manage_py_shell(code: str) -> str:
    done = _manage_py("shell", "--no-imports", "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_manage_py_check_deploy_passes_with_the_production_settings() -> None:
    done = _manage_py("check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_the_project_checks_run_in_the_production_deploy_check() -> None:
    # Django refuses an unknown tag: this proves the project's checks are registered there.
    done = _manage_py("check", "--deploy", "--fail-level", "WARNING", "--tag", checks.TAG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_make_deploy_check_gives_the_checks_a_postgres_and_a_redis_url() -> None:
    target = (ROOT / "Makefile").read_text().split("\ndeploy-check:")[1].split("\n\n")[0]
    assert "DATABASE_URL=postgres://" in target
    assert "REDIS_URL=redis://" in target
    assert "check --deploy --fail-level WARNING" in target
