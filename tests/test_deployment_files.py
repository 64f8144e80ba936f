"""The deployment files keep their promises: scalable pose workers, no secrets in the repository,
services that wait for their dependencies, a non-root image, a CI script that tests both setups.

Plain file checks: no Django, no database, no Docker needed.
"""

import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CI_SCRIPT = ROOT / ".ci" / "run"

APP_SERVICES = ["migrate", "web", "pose-worker", "celery-worker", "celery-beat"]
ALL_SERVICES = ["postgres", "redis", *APP_SERVICES]
SECRET_VARIABLES = ["DJANGO_SECRET_KEY", "POSTGRES_PASSWORD"]
# A whole value that is only a compose variable reference: ${NAME}, ${NAME:?message}, ...
VARIABLE_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?:[:?+-][^}]*)?\}$")


def load_services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or as KEY=value items."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_the_compose_file_defines_the_six_services() -> None:
    assert set(ALL_SERVICES) <= set(load_services())


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_build_or_use_the_app_image(name: str) -> None:
    services = load_services()
    service, web = services[name], services["web"]
    builds_the_project = service.get("build") in (".", "./", {"context": "."})
    uses_the_web_image = "image" in web and service.get("image") == web["image"]
    assert builds_the_project or uses_the_web_image


def test_pose_worker_can_scale() -> None:
    pose_worker = load_services()["pose-worker"]
    assert "container_name" not in pose_worker
    assert not pose_worker.get("ports")
    assert pose_worker.get("deploy", {}).get("replicas", 1) >= 2


def test_pose_worker_runs_the_management_command() -> None:
    assert command_of(load_services()["pose-worker"])[-2:] == ["manage.py", "pose_worker"]


def test_web_waits_for_healthy_postgres_and_redis() -> None:
    depends_on = load_services()["web"]["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_web_waits_for_the_migrations_to_succeed() -> None:
    services = load_services()
    assert services["web"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert command_of(services["migrate"])[-3:] == ["manage.py", "migrate", "--noinput"]


def test_postgres_and_redis_have_healthchecks() -> None:
    services = load_services()
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])


# The long-running services, each with a health check that says when it is of no use although its
# process runs. celery-beat has none: it answers no ping, and its only process dying ends the
# container, which `restart` brings back.
HEALTH_CHECKED = ["postgres", "redis", "web", "pose-worker", "celery-worker"]


def seconds(duration: str) -> float:
    """A compose duration ("1m30s", "10s", "500ms") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def healthcheck_of(name: str) -> list[str]:
    """The health check's command (CMD arguments, or the CMD-SHELL line split like a shell)."""
    kind, *command = load_services()[name]["healthcheck"]["test"]
    assert kind in ("CMD", "CMD-SHELL"), name
    return shlex.split(command[0]) if kind == "CMD-SHELL" else command


@pytest.mark.parametrize("name", HEALTH_CHECKED)
def test_long_running_services_have_a_health_check_that_ends_in_time(name: str) -> None:
    check = load_services()[name]["healthcheck"]
    assert healthcheck_of(name)
    assert seconds(check["timeout"]) <= seconds(check["interval"]), name
    assert check.get("retries", 3) >= 2, name


@pytest.mark.parametrize("name", ["web", "pose-worker", "celery-worker"])
def test_app_health_checks_give_the_process_time_to_start(name: str) -> None:
    # Models load, Celery connects: a failure during start_period does not count.
    assert seconds(load_services()[name]["healthcheck"]["start_period"]) >= 30


def test_every_service_waited_for_as_healthy_has_a_health_check() -> None:
    services = load_services()
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        for dependency, condition in depends_on.items() if isinstance(depends_on, dict) else []:
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} -> {dependency}"


def test_web_is_healthy_when_ready_asked_on_its_own_port() -> None:
    command = command_of(load_services()["web"])
    port = command[command.index("-p") + 1]
    probe = healthcheck_of("web")
    assert probe[:2] == ["python", "-c"]  # the image's Python: no curl or wget needed
    assert f"'http://127.0.0.1:{port}/health/ready'" in probe[2]  # its Host need not be allowed


def test_a_pose_worker_is_healthy_while_its_own_heartbeat_lives() -> None:
    # A module of the image's code, run without Django (tests/sessions/test_heartbeat.py).
    assert healthcheck_of("pose-worker") == ["python", "-m", "sessions.heartbeat"]
    assert (ROOT / "sessions" / "heartbeat.py").is_file()
    assert ("COPY", "sessions ./sessions") in dockerfile_instructions()


def test_the_celery_worker_is_healthy_while_it_answers_its_own_ping() -> None:
    probe = healthcheck_of("celery-worker")
    # The probe's metrics stay out of the worker's folder; compose turns $$ into $.
    assert probe[0] == "PROMETHEUS_MULTIPROC_DIR="
    assert probe[1:5] == ["celery", "-A", "rehab", "inspect"] and "ping" in probe
    assert probe[probe.index("--destination") + 1] == "celery@$$HOSTNAME"
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"celery\b", dependency) for dependency in dependencies)


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_no_service_holds_a_literal_secret(name: str) -> None:
    environment = environment_of(load_services()[name])
    for variable in SECRET_VARIABLES:
        if variable in environment:
            assert VARIABLE_REFERENCE.match(environment[variable]), variable
    for url_variable in ("DATABASE_URL", "REDIS_URL"):
        password = re.match(r"^\w+://[^:/@]*:([^@]*)@", environment.get(url_variable, ""))
        if password:
            assert VARIABLE_REFERENCE.match(password.group(1)), url_variable


def test_the_app_runs_with_production_settings() -> None:
    for name in APP_SERVICES:
        assert environment_of(load_services()[name]).get("REHAB_ENV") == "production", name


@pytest.mark.parametrize("name", ["celery-worker", "celery-beat"])
def test_celery_commands_point_at_the_rehab_app(name: str) -> None:
    command = command_of(load_services()[name])
    assert command[0] == "celery"
    assert "-A rehab" in " ".join(command) or "--app=rehab" in command


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"]
    assert users, "the Dockerfile has no USER instruction"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_the_image_starts_daphne_by_default() -> None:
    commands = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "CMD"]
    assert commands, "the Dockerfile has no CMD"
    assert "daphne" in commands[-1]
    assert "rehab.asgi:application" in commands[-1]


def test_the_ci_script_is_executable() -> None:
    assert CI_SCRIPT.is_file()
    assert os.access(CI_SCRIPT, os.X_OK)


def test_the_ci_script_tests_on_sqlite_and_on_postgres_with_redis() -> None:
    script = CI_SCRIPT.read_text()
    assert script.count("make test") >= 2
    assert "DATABASE_URL=postgres://" in script
    assert "REDIS_URL=redis://" in script


def test_the_image_copies_every_package_of_the_project() -> None:
    # The packages import-linter checks are the project's own code: the image needs each of them.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "root_packages"
    ]
    copied = set(re.findall(r"^COPY (\S+) \./\1$", DOCKERFILE.read_text(), re.MULTILINE))
    assert set(packages) <= copied, sorted(set(packages) - copied)
