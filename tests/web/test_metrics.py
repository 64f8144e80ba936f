"""Metrics for operators (web/metrics.py, /metrics): values move, the scrape adds up every process,
only the allowed get it, and the monitoring profile's files refer to metrics that exist."""

import contextlib
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from rehab.celery import app as celery_app
from web import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "live-service.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
COMPOSE_FILE = ROOT / "docker-compose.yml"


def scrape(
    client: Client | None = None, **headers: Any
) -> dict[tuple[str, tuple[Any, ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- Values ---------------------------------------------------------------------------------------
def test_the_scrape_shows_the_live_counters_moving() -> None:
    before = scrape()
    for _ in range(3):
        metrics.frame_received()
    metrics.frame_served()
    metrics.frame_dropped("replaced")
    metrics.frame_refused("rate")
    metrics.socket_opened()
    try:
        after = scrape()
    finally:
        metrics.socket_closed()
    moved = {
        name: value(after, name, **labels) - value(before, name, **labels)
        for name, labels in [
            ("rehab_live_frames_received_total", {}),
            ("rehab_live_frames_served_total", {}),
            ("rehab_live_frames_dropped_total", {"reason": "replaced"}),
            ("rehab_live_frames_refused_total", {"reason": "rate"}),
            ("rehab_live_sockets_open", {}),
        ]
    }
    assert moved == {
        "rehab_live_frames_received_total": 3,
        "rehab_live_frames_served_total": 1,
        "rehab_live_frames_dropped_total": 1,
        "rehab_live_frames_refused_total": 1,
        "rehab_live_sockets_open": 1,
    }
    assert value(scrape(), "rehab_live_sockets_open") == value(before, "rehab_live_sockets_open")


def test_a_pose_worker_is_busy_while_it_works_and_its_time_is_observed() -> None:
    before = scrape()
    started = time.perf_counter()
    with metrics.pose_busy():
        during = scrape()
    took = time.perf_counter() - started
    after = scrape()
    busy = "rehab_pose_workers_busy"
    assert value(during, busy) == value(before, busy) + 1
    assert value(after, busy) == value(before, busy)
    assert value(after, "rehab_pose_seconds_count") == value(before, "rehab_pose_seconds_count") + 1
    observed = value(after, "rehab_pose_seconds_sum") - value(before, "rehab_pose_seconds_sum")
    assert 0 < observed <= took


def test_the_queue_wait_is_measured_from_the_sent_time_and_ignores_anything_else() -> None:
    before = scrape()
    metrics.pose_queue_wait(time.time() - 0.2)
    metrics.pose_queue_wait(None)  # a request from a web process that does not stamp them
    metrics.pose_queue_wait("yesterday")
    after = scrape()
    count = "rehab_pose_queue_wait_seconds_count"
    assert value(after, count) == value(before, count) + 1
    waited = value(after, "rehab_pose_queue_wait_seconds_sum") - value(
        before, "rehab_pose_queue_wait_seconds_sum"
    )
    assert 0.2 <= waited < 1.0


def test_a_label_is_a_code_never_free_text() -> None:
    before = scrape()
    metrics.frame_refused("Jane Doe's knee, session 12")
    after = scrape()
    name = "rehab_live_frames_refused_total"
    assert value(after, name, reason="other") == value(before, name, reason="other") + 1
    assert not any("Jane" in str(labels) for _, labels in after)


@pytest.fixture
def failing_task() -> Any:
    @celery_app.task(name="tests.web.test_metrics.failing")
    def failing() -> None:
        raise RuntimeError("failed on purpose")

    return failing


def test_a_celery_task_run_and_its_failure_are_counted_by_task_name(failing_task: Any) -> None:
    name = failing_task.name
    before = scrape()
    # As a worker runs it (an eager task that raises into its caller is no task failure).
    assert failing_task.apply(throw=False).failed()
    after = scrape()
    runs = "rehab_celery_task_run_seconds_count"
    assert value(after, runs, task=name) == value(before, runs, task=name) + 1
    failures = "rehab_celery_task_failures_total"
    assert value(after, failures, task=name) == value(before, failures, task=name) + 1
    # Run in-process, a task was never published: no queue time.
    assert value(after, "rehab_celery_task_queue_seconds_count", task=name) == 0


# --- Access ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "served"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4 seen by a dual-stack socket
        ("172.18.0.7", True),  # a docker compose network
        ("10.1.2.3", True),
        ("203.0.113.9", False),
        ("2001:db8::1", False),
        ("", False),
    ],
)
def test_metrics_are_served_only_to_allowed_networks(address: str, served: bool) -> None:
    response = Client(REMOTE_ADDR=address).get("/metrics")
    assert response.status_code == (200 if served else 404)


def test_a_request_through_a_proxy_is_not_trusted_by_its_address() -> None:
    # The TLS proxy sits on an allowed network; its clients are anybody.
    client = Client(REMOTE_ADDR="172.18.0.2")
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.4").status_code == 404
    assert client.get("/metrics", HTTP_X_REAL_IP="198.51.100.4").status_code == 404


def test_the_token_opens_metrics_from_anywhere(settings: Any) -> None:
    settings.METRICS_TOKEN = "a-long-random-token"
    client = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-random-token").status_code == 200
    )
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-random-tokeN").status_code == 404
    )
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic a-long-random-token").status_code == 404
    assert client.get("/metrics").status_code == 404


def test_without_a_token_configured_no_token_opens_them(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    client = Client(REMOTE_ADDR="203.0.113.9")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_an_empty_list_of_networks_leaves_only_the_token(settings: Any) -> None:
    settings.METRICS_ALLOWED_NETS = []
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


def test_the_metrics_are_only_read() -> None:
    assert Client().post("/metrics").status_code == 405


def test_a_production_scrape_over_plain_http_is_not_redirected_to_https(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/metrics").status_code == 200
    assert Client().get("/accounts/login/").status_code == 301


# --- Several processes ----------------------------------------------------------------------------
def _worker_in_a_child(ready: Any, release: Any) -> None:
    """A spawned process (a fresh interpreter, as the local pose pool's): counts as a pose worker
    until released, serves one frame."""
    from web import metrics

    metrics.pose_worker_started()
    metrics.frame_served()
    ready.set()
    release.wait(30)


@contextlib.contextmanager
def child_worker() -> Iterator[tuple[Any, Any]]:
    """A spawned child, ready; the child process and the event that lets it exit."""
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    child = context.Process(target=_worker_in_a_child, args=(ready, release))
    child.start()
    try:
        assert ready.wait(60), "the child process did not start"
        yield child, release
    finally:
        release.set()
        child.join(30)


def test_a_child_process_writes_into_the_scrape_and_its_live_gauge_goes_with_it() -> None:
    before = scrape()
    with child_worker() as (child, release):
        with_child = scrape()
        release.set()
        child.join(30)
        without_child = scrape()
    served, workers = "rehab_live_frames_served_total", "rehab_pose_workers"
    assert value(with_child, served) == value(before, served) + 1
    assert value(with_child, workers) == value(before, workers) + 1
    # Gone: its count stays, its live gauge is forgotten (it died without saying so).
    assert value(without_child, served) == value(before, served) + 1
    assert value(without_child, workers) == value(before, workers)


def test_a_child_that_exits_can_be_marked_dead_explicitly() -> None:
    with child_worker() as (child, _):
        live_file = Path(os.environ[metrics.MULTIPROC_ENV]) / f"gauge_livesum_{child.pid}.db"
        assert live_file.exists()
        metrics.process_exited(child.pid)  # what a Celery child does at its shutdown
        assert not live_file.exists()


def test_every_process_of_the_tree_shares_one_metrics_folder() -> None:
    folder = os.environ[metrics.MULTIPROC_ENV]
    assert Path(folder).is_dir()
    # A command started now inherits it (as the local pose processes and Celery children do).
    shown = subprocess.run(
        [sys.executable, "-c", f"import os; print(os.environ['{metrics.MULTIPROC_ENV}'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == folder


def test_the_folders_of_killed_processes_are_removed_by_the_next_process() -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    temporary = Path(tempfile.gettempdir())
    abandoned = temporary / f"rehab-metrics-{int(ended.stdout)}-test"
    in_use = temporary / f"rehab-metrics-{os.getpid()}-test"
    for folder in (abandoned, in_use):
        folder.mkdir()
    try:
        metrics._remove_abandoned_folders()
        assert not abandoned.exists()
        assert in_use.exists()
    finally:
        shutil.rmtree(abandoned, ignore_errors=True)
        shutil.rmtree(in_use, ignore_errors=True)


def test_only_web_metrics_imports_prometheus_client() -> None:
    """prometheus_client picks its mode at import: web.metrics must come first (it sets the
    folder), so no other module of the server's processes imports the library (the tests and
    bench/ only parse scrapes, in processes of their own)."""
    outside = {".venv", ".uv", "tests", "bench", "node_modules"}
    importers = {
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*.py")
        if not outside & set(path.relative_to(ROOT).parts)
        and re.search(r"^\s*(import|from) prometheus_client", path.read_text(), re.MULTILINE)
    }
    assert importers == {"web/metrics.py"}


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_a_celery_worker_serves_the_time_from_publication_to_start(tmp_path: Path) -> None:
    """A real worker (prefork: the task runs in a child) on a queue of its own."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    queue = f"metrics-test-{os.getpid()}"
    env = {
        **os.environ,
        "METRICS_PORT": str(port),
        metrics.MULTIPROC_ENV: str(tmp_path),
    }
    argv = [Path(sys.executable).parent / "celery", "-A", "rehab", "worker", "-Q", queue]
    worker = subprocess.Popen(
        [*map(str, argv), "--concurrency=1", "--loglevel=warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        celery_app.send_task("celery.accumulate", args=(1, 2), queue=queue)
        seen = _wait_for_sample(
            port, 'rehab_celery_task_queue_seconds_count{task="celery.accumulate"}'
        )
        assert seen == 1.0
    finally:
        worker.terminate()
        worker.wait(30)


def _wait_for_sample(port: int, sample: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:  # noqa: S310 # a local URL
                for line in answer.read().decode().splitlines():
                    if line.startswith(sample + " "):
                        return float(line.split()[-1])
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise AssertionError(f"{sample} not served on port {port}")


# --- The monitoring profile -----------------------------------------------------------------------
def defined_metrics() -> set[str]:
    return {family.name for family in REGISTRY.collect() if family.name.startswith("rehab_")}


def dashboard_expressions() -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def test_the_dashboard_uses_only_metrics_that_web_metrics_defines_and_shows_them_all() -> None:
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for expression in dashboard_expressions()
        for name in re.findall(r"rehab_[a-z_]+", expression)
    }
    assert used == defined_metrics()


def test_the_dashboard_reads_the_provisioned_data_source() -> None:
    datasources = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasources["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    assert {panel["datasource"]["uid"] for panel in panels} == {uid}


def test_the_prometheus_config_scrapes_web_pose_workers_and_the_celery_worker() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    port = yaml.safe_load(COMPOSE_FILE.read_text())["x-app-environment"]["METRICS_PORT"]
    assert jobs["web"]["static_configs"][0]["targets"] == ["web:8000"]
    for service in ("pose-worker", "celery-worker"):
        (discovery,) = jobs[service]["dns_sd_configs"]
        assert discovery["names"] == [service]
        assert discovery["port"] == int(port)


def test_the_monitoring_services_start_only_with_their_profile() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    folder = yaml.safe_load(COMPOSE_FILE.read_text())["x-app-environment"][metrics.MULTIPROC_ENV]
    for name in ("web", "pose-worker", "celery-worker"):
        assert services[name]["environment"][metrics.MULTIPROC_ENV] == folder
        assert folder in services[name]["tmpfs"]  # a fresh folder on every start
    # Prometheus reaches the web process by its compose name.
    assert "web" in services["web"]["environment"]["METRICS_HOSTS"].split(",")
