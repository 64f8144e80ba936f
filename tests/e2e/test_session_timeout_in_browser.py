"""The end of a sign-in in a real browser: the idle warning (static/js/session-timeout.js) and the
live page when its socket is closed for its user (4403 signed out, 4429 too many sockets)."""

import time
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import PASSWORD, World
from tests.e2e.conftest import screenshot
from web.signin_lifetime import LAST_ACTIVITY

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in_as_patient_p(page: Page, base: str) -> None:
    page.goto(f"{base}{reverse('login')}")
    page.get_by_label("E-mail").fill("patient.a@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Hello Pat")).to_be_visible()


def last_activity(context: BrowserContext) -> float:
    cookie = next(c for c in context.cookies() if c["name"] == django_settings.SESSION_COOKIE_NAME)
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(cookie["value"])
    return float(store[LAST_ACTIVITY])


def test_the_page_warns_before_the_idle_timeout_and_signs_out_when_it_runs_out(
    page: Page, live_server: Any, world: World, settings: Any
) -> None:
    settings.SESSION_IDLE_TIMEOUT_S = 12  # the warning comes 6 s before
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in_as_patient_p(page, live_server.url)

    warning = page.get_by_role("alertdialog", name="Are you still there?")
    expect(warning).to_be_visible(timeout=10_000)
    expect(warning).to_contain_text("You will be signed out in 0:0")
    stay = warning.get_by_role("button", name="Stay signed in")
    expect(stay).to_be_focused()
    screenshot(page, "session_timeout_warning")
    clicked_at = time.time()
    stay.click()
    expect(warning).to_be_hidden()
    assert last_activity(page.context) >= clicked_at - 1  # the keep-alive counted

    # Left alone: warned again, then signed out and sent to the login page, which says why.
    expect(warning).to_be_visible(timeout=10_000)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=15_000)
    expect(
        page.get_by_text("You were signed out after 12 seconds without activity.")
    ).to_be_visible()
    assert page.url.endswith("?next=%2Fsessions%2Ftoday%2F")
    screenshot(page, "session_timeout_signed_out")
    assert problems == []


def open_live_page(context: BrowserContext, base: str, world: World) -> Page:
    page = context.new_page()
    page.goto(f"{base}{reverse('session_live', args=[world.a.open_session.pk])}")
    page.get_by_role("button", name="Start camera").click()
    return page


def test_signing_out_in_another_tab_stops_the_live_page_with_a_way_to_sign_in_again(
    webcam_browser: Browser, asgi_server: str, world: World
) -> None:
    context = webcam_browser.new_context(viewport={"width": 1280, "height": 720})
    sign_in_as_patient_p(context.new_page(), asgi_server)
    live = open_live_page(context, asgi_server, world)
    expect(live.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)

    other_tab = context.new_page()
    other_tab.goto(f"{asgi_server}{reverse('today')}")
    other_tab.get_by_role("button", name="Sign out").click()
    signed_out_at = time.monotonic()

    problem = live.get_by_role("alert").filter(has_text="You were signed out")
    expect(problem).to_be_visible(timeout=5_000)
    assert time.monotonic() - signed_out_at < 5
    sign_in = problem.get_by_role("link", name="Sign in")
    expect(sign_in).to_have_attribute(
        "href", f"{reverse('login')}?next=%2Fsessions%2F{world.a.open_session.pk}%2Flive%2F"
    )
    screenshot(live, "live_session_signed_out")
    live.wait_for_timeout(3000)  # no reconnection
    expect(live.locator("#connection")).to_have_attribute("data-state", "closed")
    context.close()


def test_a_second_live_page_over_the_cap_says_the_session_is_open_elsewhere(
    webcam_browser: Browser, asgi_server: str, world: World, settings: Any
) -> None:
    settings.LIVE_MAX_SOCKETS_PER_USER = 1
    context = webcam_browser.new_context(viewport={"width": 1280, "height": 720})
    sign_in_as_patient_p(context.new_page(), asgi_server)
    first = open_live_page(context, asgi_server, world)
    expect(first.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)

    second = open_live_page(context, asgi_server, world)

    expect(
        second.get_by_role("alert").filter(has_text="This session is open in another window")
    ).to_be_visible(timeout=10_000)
    second.wait_for_timeout(3000)  # no reconnection
    expect(second.locator("#connection")).to_have_attribute("data-state", "closed")
    expect(first.locator("#connection")).to_have_attribute("data-state", "live")
    context.close()
