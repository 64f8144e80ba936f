"""Recovery insight in real headless Chromium on the demo clinic: the therapist's charts, a PDF
progress report made by Celery and downloaded, and the patient's simpler charts."""

from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(asgi_server: str, celery_worker: Any) -> str:
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return asgi_server


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_therapist_follows_recovery_on_charts_and_files_a_pdf_report(
    page: Page, demo: str
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, demo, "therapist@demo.clinic", "demo-therapist")
    ben = page.locator("table.roster tbody tr").filter(has_text="Ben Okafor")
    expect(ben.locator(".badge.alert")).to_have_text("1")  # missed sessions, from the real rules

    page.get_by_role("link", name="Anna Schmidt").click()
    charts = page.locator("#progress .chart")
    expect(charts).to_have_count(6)  # four exercises, adherence, pain and effort with ROM
    for n in range(6):
        expect(charts.nth(n).locator(".main-svg").first).to_be_visible()
    expect(page.locator("#chart-rom-heel_slide")).to_contain_text("Target 110°")
    expect(page.locator("#chart-adherence")).to_contain_text("Sessions per week")
    page.get_by_role("link", name="365 days").click()
    expect(page.locator("#progress h2")).to_contain_text("–")
    screenshot(page, "progress_charts")
    assert errors == []

    page.get_by_role("link", name="New progress report (PDF)").click()
    page.get_by_label("Assessment").fill("Flexion 112° and improving; quadriceps lag resolved.")
    page.get_by_label("Plan").fill("Progress to step-ups; review in 4 weeks.")
    page.get_by_role("button", name="Make the PDF").click()
    download_link = page.get_by_role("link", name="Download PDF")
    expect(download_link).to_be_visible(timeout=60_000)
    expect(page.locator("#report")).to_contain_text("SHA-256")
    screenshot(page, "progress_report_ready")
    with page.expect_download() as info:
        download_link.click()
    download = info.value
    assert download.suggested_filename.startswith("progress-report-")
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"


def test_a_session_page_overlays_the_repetitions(page: Page, demo: str) -> None:
    sign_in(page, demo, "therapist@demo.clinic", "demo-therapist")
    page.get_by_role("link", name="Anna Schmidt").click()
    page.locator("table.sessions tbody tr a").first.click()
    chart = page.locator("#chart-session")
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart).to_contain_text("ROM of each repetition")
    screenshot(page, "session_chart")


def test_a_patient_sees_their_own_progress(page: Page, demo: str) -> None:
    sign_in(page, demo, "anna@demo.clinic", "demo-patient")
    page.get_by_role("link", name="My history").click()
    charts = page.locator(".chart")
    expect(charts.first.locator(".main-svg").first).to_be_visible()
    expect(page.get_by_role("heading", name="My progress")).to_be_visible()
    screenshot(page, "patient_progress")
