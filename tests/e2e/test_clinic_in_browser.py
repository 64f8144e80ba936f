"""The clinic's everyday path in a real browser, on the demo clinic: the therapist reviews the
roster, a patient and builds a protocol; a patient does today's session and reports on it."""

import re
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from patients.models import Protocol
from sessions.models import ExerciseSession, PainReport
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_clinic(live_server: Any) -> str:
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return str(live_server.url)


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_therapist_reviews_patients_and_builds_a_protocol(page: Page, demo_clinic: str) -> None:
    page.goto(f"{demo_clinic}/")
    screenshot(page, "login")
    sign_in(page, demo_clinic, "therapist@demo.clinic", "demo-therapist")

    expect(page.get_by_role("heading", name="Patients")).to_be_visible()
    roster = page.locator("table.roster tbody tr")
    expect(roster).to_have_count(3)
    expect(roster.filter(has_text="Anna Schmidt")).to_contain_text("TKA early rehab")
    expect(roster.filter(has_text="Ben Okafor")).to_contain_text("%")
    screenshot(page, "roster")

    page.get_by_role("link", name="Anna Schmidt").click()
    expect(page.get_by_role("heading", name="Anna Schmidt")).to_be_visible()
    expect(page.locator("table.sessions tbody tr").first).to_contain_text("done")  # its outcome
    screenshot(page, "patient_detail")

    page.locator("table.sessions tbody tr a").first.click()
    expect(page.get_by_role("heading", name="Repetitions")).to_be_visible()
    screenshot(page, "session_detail")

    page.get_by_role("link", name="Protocols").click()
    page.get_by_role("link", name="New protocol").click()
    page.get_by_label("Name").fill("Hip early rehab")
    first = page.locator("#lines tr").nth(0)
    first.locator("select[name$='-exercise']").select_option(label="Straight leg raise")
    expect(first.locator("input[name$='-target_rom_deg']")).to_have_attribute("placeholder", "45")
    page.get_by_role("button", name="+ Add exercise").click()
    second = page.locator("#lines tr").nth(1)
    second.locator("select[name$='-exercise']").select_option(label="Standing hip abduction")
    second.locator("input[name$='-target_rom_deg']").fill("25")
    screenshot(page, "protocol_builder")
    page.get_by_role("button", name="Save protocol").click()
    expect(page.get_by_text("Protocol “Hip early rehab” saved.")).to_be_visible()

    lines = Protocol.objects.get(name="Hip early rehab").prescriptions.order_by("position")
    assert [(line.exercise.slug, line.target_rom_deg) for line in lines] == [
        ("straight_leg_raise", 45.0),
        ("standing_hip_abduction", 25.0),
    ]


def test_a_patient_without_a_camera_does_todays_session_and_reports_pain(
    page: Page, demo_clinic: str
) -> None:
    sign_in(page, demo_clinic, "anna@demo.clinic", "demo-patient")
    expect(page.get_by_role("heading", name="Hello Anna")).to_be_visible()
    plan = page.locator("li.plan-item")
    expect(plan).to_have_count(4)
    screenshot(page, "patient_today")

    plan.filter(has_text="Heel slide").get_by_role(
        "button", name=re.compile("Start|Do it again")
    ).click()
    expect(page.get_by_role("button", name="Start camera")).to_be_visible()
    page.get_by_role("link", name="Back", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Heel slide"))).to_be_visible()
    screenshot(page, "patient_session")
    page.get_by_role("button", name="I have finished this session").click()

    expect(page.get_by_role("heading", name="How did it go?")).to_be_visible()
    page.locator("label.scale-option", has_text="3").first.click()
    page.get_by_label("4 - somewhat strong").check()
    screenshot(page, "patient_report")
    page.get_by_role("button", name="Send to my therapist").click()
    expect(page.get_by_text("Thank you.")).to_be_visible()

    session = ExerciseSession.objects.filter(patient__user__username="anna@demo.clinic").latest(
        "started_at"
    )
    assert session.status == "completed"
    report = PainReport.objects.get(session=session)
    assert (report.pain_nrs, report.effort_borg) == (3, 4.0)


def test_the_patient_pages_fit_a_phone(browser: Any, demo_clinic: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, demo_clinic, "ben@demo.clinic", "demo-patient")
    expect(page.get_by_role("heading", name="Hello Ben")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    screenshot(page, "patient_today_phone")
    context.close()
