"""Redis restarts in the middle of a live session: the page reconnects by itself, and the session
goes on with its counts intact and no repetition lost or doubled.

The whole production topology runs in processes of its own on a Redis of the test's own (the
shared one stays untouched): daphne, two pose workers and, after the restart, a Celery worker.
Redis runs without persistence, so the restart loses every key: the channel layer's groups, the
socket slots and the Celery queue. No Celery worker runs before the restart, so the first
repetition is only a message in that queue when Redis goes: it survives because the consumer
stores what it counted when it loses Redis.
"""

import shutil
import time
from typing import Any

import pytest
from django.conf import global_settings, settings
from django.core.management import call_command
from django.db import connection
from playwright.sync_api import Browser, expect

from patients.models import Patient
from sessions.models import ExerciseSession
from tests.e2e.conftest import screenshot, start_the_squat
from tests.e2e.test_live_session import sign_in_as_carla
from tests.processes import RedisServer, celery_worker, production_env, production_workers
from tests.processes import web_server as start_web_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL or connection.vendor != "postgresql",
        reason="the production topology needs PostgreSQL and Redis (the CI's second run)",
    ),
]


def test_a_redis_restart_mid_session_loses_and_doubles_no_repetition(
    webcam_browser: Browser, settings: Any
) -> None:
    assert shutil.which("redis-server"), "redis-server is needed to restart a Redis of our own"
    # The web process is not the test's: it checks passwords with the real hashers.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    redis = RedisServer()
    env = production_env(redis.url)
    web, base = start_web_server(env)
    processes = [web]
    try:
        with production_workers(pose_workers=2, celery=False, redis_url=redis.url) as workers:
            processes += workers
            context = webcam_browser.new_context(viewport={"width": 1280, "height": 720})
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            sign_in_as_carla(page, base)
            start_the_squat(page)
            connection_state, reps = page.locator("#connection"), page.locator("#rep-counter")
            expect(reps).to_have_attribute("data-reps", "1", timeout=40_000)

            redis.restart()
            restarted = time.monotonic()
            expect(connection_state).to_have_attribute("data-state", "reconnecting", timeout=10_000)
            screenshot(page, "live_session_reconnecting")
            expect(connection_state).to_have_attribute("data-state", "live", timeout=30_000)
            back_s = time.monotonic() - restarted
            # The new connection resumed from the stored repetition (its `ready` sets the count).
            expect(reps).to_have_attribute("data-reps", "1")
            processes.append(celery_worker(env))

            expect(reps).to_have_attribute("data-reps", "2", timeout=45_000)
            time.sleep(1.0)
            page.once("dialog", lambda dialog: dialog.accept())
            page.get_by_role("button", name="End session").click()
            expect(page.locator("#summary")).to_be_visible(timeout=15_000)
            expect(page.locator("#summary-total")).to_have_text("2")
            screenshot(page, "live_session_after_redis_restart")
            assert problems == []
            context.close()
    finally:
        for process in processes:
            process.stop()
        redis.stop()

    carla = Patient.objects.get(user__username="carla@demo.clinic")
    session = ExerciseSession.objects.filter(patient=carla, exercise__slug="squat").latest(
        "started_at"
    )
    assert session.status == ExerciseSession.Status.COMPLETED
    keys = list(
        session.repetitions.order_by("set_number", "index").values_list("set_number", "index")
    )
    assert keys == [(1, 1), (1, 2)]
    assert session.reps_counted == 2
    assert any("lost Redis" in line for line in web.lines), "the web process never lost Redis"
    print(f"Redis restarted: the page was live again {back_s:.1f} s later")
