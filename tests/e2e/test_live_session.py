"""A patient's live session in real headless Chromium, with the side-view squat video as the
webcam: frames go over the real WebSocket to real pose workers, repetitions into the database."""

import logging
import time
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import Browser, Page, expect

from patients.models import Patient
from sessions.models import ExerciseSession
from tests.e2e.conftest import screenshot, start_the_squat
from tests.privacy import (
    CHECKOUT,
    database_findings,
    file_findings,
    redis_findings,
    server_folders,
    text_findings,
)
from tests.processes import Background

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The video: two squats, deepest at 10.6 s and 17.4 s; it is 20 s long and the fake camera then
# starts it again, so the session is ended after the second squat and before a third.
EXPECTED_REPS = 2


def sign_in_as_carla(page: Page, base: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("E-mail").fill("carla@demo.clinic")
    page.get_by_label("Password").fill("demo-patient")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Hello Carla")).to_be_visible()


def test_a_patient_squats_in_front_of_the_camera_and_every_repetition_is_recorded(
    webcam_browser: Browser,
    asgi_server: str,
    live_services: list[Background],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    started = time.time()
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    context = webcam_browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in_as_carla(page, asgi_server)

    start_the_squat(page)
    reps = page.locator("#rep-counter")
    expect(reps).to_have_attribute("data-reps", "1", timeout=40_000)
    screenshot(page, "live_session")
    expect(reps).to_have_attribute("data-reps", str(EXPECTED_REPS), timeout=30_000)
    time.sleep(1.0)  # the rep's own messages (cue, list) arrive with it; then end
    page.once("dialog", lambda dialog: dialog.accept())  # "end with repetitions still to do?"
    page.get_by_role("button", name="End session").click()

    summary = page.locator("#summary")
    expect(summary).to_be_visible(timeout=15_000)
    expect(page.locator("#summary-total")).to_have_text(str(EXPECTED_REPS))
    screenshot(page, "live_session_summary")

    carla = Patient.objects.get(user__username="carla@demo.clinic")
    session = ExerciseSession.objects.filter(patient=carla, exercise__slug="squat").latest(
        "started_at"
    )
    assert session.status == ExerciseSession.Status.COMPLETED
    deadline = time.monotonic() + 20  # with Redis a Celery worker process writes them
    while session.repetitions.count() < EXPECTED_REPS and time.monotonic() < deadline:
        time.sleep(0.2)
    rows = list(session.repetitions.order_by("set_number", "index"))
    assert [(row.set_number, row.index) for row in rows] == [(1, 1), (1, 2)]
    assert all(60 < row.rom_deg < 140 for row in rows)

    # The pain and effort form follows the summary and files the report.
    page.locator("input[name=pain_nrs][value='2']").check()
    page.locator("input[name=effort_borg][value='3.0']").check()
    page.get_by_role("button", name="Send to my therapist").click()
    expect(page.get_by_role("heading", name="Hello Carla")).to_be_visible()
    session.refresh_from_db()
    assert session.pain_report.pain_nrs == 2
    assert problems == []
    context.close()
    assert_no_image_data_left(since=started, logs=caplog.messages, workers=live_services)


def assert_no_image_data_left(*, since: float, logs: list[str], workers: list[Background]) -> None:
    """Frames were JPEGs in flight only: none in any table, Redis key, new file or log line."""
    findings = database_findings()
    findings += file_findings(server_folders(), since=since, skip=[CHECKOUT])
    findings += text_findings("test process log", logs)
    for worker in workers:
        findings += text_findings(f"output of {worker.process.args!r}", worker.lines)
    if settings.REDIS_URL:
        time.sleep(2)  # the last pose requests are taken off their channel
        findings += redis_findings(settings.REDIS_URL)
    assert findings == []


def test_the_live_page_fits_a_phone(
    webcam_browser: Browser, asgi_server: str, live_services: Any
) -> None:
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    context = webcam_browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in_as_carla(page, asgi_server)
    start_the_squat(page)
    page.wait_for_timeout(3000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    screenshot(page, "live_session_phone")
    context.close()
