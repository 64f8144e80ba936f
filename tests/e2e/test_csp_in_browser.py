"""The Content-Security-Policy in real headless Chromium, on the demo clinic served by daphne: the
pages with charts, the protocol builder, the report page and the live session with its webcam
and WebSocket run without one violation.

Violations are caught twice: the page's `securitypolicyviolation` events, reported through a
binding Playwright installs outside the page's policy, and Chromium's console messages.
"""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Browser, Page, Response, expect

from tests.e2e.conftest import start_the_squat

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} ` +
    `at ${event.sourceFile}:${event.lineNumber} on ${document.location.pathname}`
  );
});
"""


class PolicyWatch:
    """Everything the browser refused on one page object, and the policies it was served."""

    def __init__(self, page: Page) -> None:
        self.violations: list[str] = []
        self.policies: dict[str, str] = {}
        page.expose_binding(
            "reportCspViolation", lambda _source, text: self.violations.append(text)
        )
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(f"console: {message.text}")

    def _response(self, response: Response) -> None:
        if response.request.resource_type == "document":
            policy = response.headers.get("content-security-policy", "")
            self.policies[re.sub(r"[0-9a-f-]{36}", "<id>", response.url)] = policy


@pytest.fixture
def demo(asgi_server: str, celery_worker: Any) -> str:
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return asgi_server


@pytest.fixture
def watched(page: Page) -> Iterator[tuple[Page, PolicyWatch]]:
    yield page, PolicyWatch(page)


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def assert_clean(watch: PolicyWatch) -> None:
    assert watch.policies, "no page was loaded"
    unprotected = [
        url for url, policy in watch.policies.items() if "script-src 'self'" not in policy
    ]
    assert not unprotected, f"pages served without the policy: {unprotected}"
    assert watch.violations == []


def test_the_therapists_pages_run_under_the_policy(
    watched: tuple[Page, PolicyWatch], demo: str
) -> None:
    page, watch = watched
    sign_in(page, demo, "therapist@demo.clinic", "demo-therapist")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible()

    page.get_by_role("link", name="Anna Schmidt").click()
    charts = page.locator("#progress .chart")
    expect(charts).to_have_count(6)
    for n in range(6):
        expect(charts.nth(n).locator(".main-svg").first).to_be_visible()
    charts.first.hover()  # plotly's hover labels and modebar: styles set at run time

    page.locator("table.sessions tbody tr a").first.click()
    expect(page.locator("#chart-session .main-svg").first).to_be_visible()

    page.go_back()
    page.get_by_role("link", name="New progress report (PDF)").click()
    page.get_by_label("Assessment").fill("Flexion improving.")
    page.get_by_label("Plan").fill("Review in 4 weeks.")
    page.get_by_role("button", name="Make the PDF").click()
    # The report page polls its status with fetch() until the PDF is ready, then reloads.
    expect(page.locator("#report")).to_contain_text("SHA-256", timeout=60_000)

    page.get_by_role("link", name="Protocols").click()
    page.get_by_role("link", name="New protocol").click()
    first = page.locator("#lines tr").nth(0)
    first.locator("select[name$='-exercise']").select_option(label="Straight leg raise")
    page.get_by_role("button", name="+ Add exercise").click()
    expect(page.locator("#lines tr")).to_have_count(2)
    assert_clean(watch)


def test_the_patients_pages_run_under_the_policy(
    watched: tuple[Page, PolicyWatch], demo: str
) -> None:
    page, watch = watched
    sign_in(page, demo, "anna@demo.clinic", "demo-patient")
    expect(page.get_by_role("heading", name="Hello Anna")).to_be_visible()
    page.get_by_role("link", name="My history").click()
    expect(page.locator(".chart .main-svg").first).to_be_visible()
    assert_clean(watch)


def test_the_live_session_streams_under_the_policy(
    webcam_browser: Browser, demo: str, live_services: Any
) -> None:
    context = webcam_browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    watch = PolicyWatch(page)
    sign_in(page, demo, "carla@demo.clinic", "demo-patient")
    start_the_squat(page)
    expect(page.locator("#angle")).not_to_have_text("—", timeout=30_000)  # a pose came back
    assert_clean(watch)
    context.close()
