"""Beyond what the pose workers serve at full rate, a patient who starts a live session is told the
service is busy and gets in by themselves once there is room, in real headless Chromium."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Browser, Page, expect

from sessions import pose_client
from tests.e2e.conftest import screenshot, start_the_squat

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, base: str, email: str, first_name: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("demo-patient")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Hello {first_name}")).to_be_visible()


@pytest.fixture
def one_local_pose_process(settings: Any) -> Iterator[None]:
    """The local pool, one process serving one stream at full rate, whatever the environment;
    the pool of this size is stopped afterwards."""
    settings.POSE_TRANSPORT = "local"
    settings.POSE_LOCAL_WORKERS = 1
    settings.LIVE_STREAMS_PER_POSE_WORKER = 1
    pose_client.stop_local_pool()
    yield
    pose_client.stop_local_pool()


def test_a_patient_beyond_capacity_is_told_the_service_is_busy_and_gets_in_when_one_leaves(
    webcam_browser: Browser, asgi_server: str, one_local_pose_process: None, settings: Any
) -> None:
    settings.LIVE_BUSY_RETRY_S = 3
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    first = webcam_browser.new_context(viewport={"width": 1280, "height": 720})
    carla = first.new_page()
    sign_in(carla, asgi_server, "carla@demo.clinic", "Carla")
    start_the_squat(carla)

    second = webcam_browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    anna = second.new_page()
    problems: list[str] = []
    anna.on("pageerror", lambda error: problems.append(str(error)))
    sign_in(anna, asgi_server, "anna@demo.clinic", "Anna")
    anna.locator(".plan-item").first.get_by_role("button").or_(
        anna.locator(".plan-item").first.get_by_role("link")
    ).first.click()
    anna.get_by_role("button", name="Start camera").click()
    connection = anna.locator("#connection")
    expect(connection).to_have_attribute("data-state", "busy", timeout=30_000)
    expect(connection).to_have_text("Service busy")
    expect(anna.locator("#placement")).to_have_text(
        "The live service is busy right now. Your session is kept: this page tries again in "
        "3 seconds."
    )
    screenshot(anna, "live_service_busy_phone")

    first.close()  # Carla leaves: her place frees at once
    expect(connection).to_have_attribute("data-state", "live", timeout=30_000)
    assert problems == []
    second.close()
