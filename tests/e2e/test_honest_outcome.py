"""A patient who stands still in front of the camera and ends the session: real Chromium, a still
picture of a person as the webcam, the real WebSocket and pose workers. Nothing is counted, so
nothing is praised and the plan's numbers do not move."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Browser, Playwright, expect

from dashboard.selectors import roster_for_therapist
from patients.models import Patient
from sessions.models import ExerciseSession
from tests.e2e.conftest import SQUAT_VIDEO, launch_with_webcam, screenshot, start_the_squat
from tests.e2e.test_live_session import sign_in_as_carla
from tests.processes import Background

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def still_webcam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The squat video's first frame (the man standing side-on) held for 10 s, 640x480, 15/s."""
    clip = tmp_path_factory.mktemp("still") / "still.y4m"
    video_filter = "trim=end_frame=1,loop=loop=150:size=1,scale=-2:480,pad=640:480:(ow-iw)/2:0"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(SQUAT_VIDEO), "-vf", video_filter, "-r", "15",
         "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


@pytest.fixture(scope="module")
def still_browser(playwright: Playwright, still_webcam: Path) -> Iterator[Browser]:
    browser = launch_with_webcam(playwright, still_webcam)
    yield browser
    browser.close()


def test_standing_still_and_ending_is_not_done_and_changes_no_numbers(
    still_browser: Browser, asgi_server: str, live_services: list[Background]
) -> None:
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    carla = Patient.objects.get(user__username="carla@demo.clinic")
    adherence_before = adherence_7d(carla)
    context = still_browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in_as_carla(page, asgi_server)
    squat = page.locator(".plan-item").filter(has=page.get_by_role("heading", name="Squat"))
    week_before = squat.locator(".week strong").inner_text()

    start_the_squat(page)
    time.sleep(8)  # placed, counted down, counting: the person does not move
    expect(page.locator("#rep-counter")).to_have_attribute("data-reps", "0")
    page.once("dialog", lambda dialog: dialog.accept())  # "end with repetitions still to do?"
    page.get_by_role("button", name="End session").click()

    expect(page.locator("#summary")).to_be_visible(timeout=15_000)
    heading = page.locator("#summary-heading")
    expect(heading).to_have_text("No repetitions were measured")
    expect(page.locator("#summary-outcome")).to_contain_text("does not count towards your plan")
    assert "Well done" not in page.locator("#summary").inner_text()
    screenshot(page, "live_session_nothing_measured")

    session = ExerciseSession.objects.filter(patient=carla, exercise__slug="squat").latest(
        "started_at"
    )
    assert session.status == ExerciseSession.Status.COMPLETED
    assert session.outcome == ExerciseSession.Outcome.NOT_MEASURED
    assert not session.counts_towards_plan

    page.goto(f"{asgi_server}/")
    squat = page.locator(".plan-item").filter(has=page.get_by_role("heading", name="Squat"))
    assert squat.locator(".week strong").inner_text() == week_before
    assert adherence_7d(carla) == adherence_before
    assert problems == []
    context.close()


def adherence_7d(patient: Patient) -> float | None:
    """The patient's adherence over the last 7 days, as their therapist's roster shows it."""
    rows = roster_for_therapist(therapist=patient.therapist, today=timezone.localdate())
    [row] = [row for row in rows if row.patient.pk == patient.pk]
    return row.adherence_7d
