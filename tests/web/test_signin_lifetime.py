"""How long a sign-in lasts (web/signin_lifetime.py): a new session key at sign-in, the idle
timeout with its warning, the absolute lifetime, and the keep-alive endpoint."""

import os
import subprocess
import sys
import time
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD, World, client_for
from web.signin_lifetime import END_NOTICE_S, LAST_ACTIVITY, SIGNED_IN_AT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def store(key: str) -> Any:
    return import_module(django_settings.SESSION_ENGINE).SessionStore(key)


def shift_clocks(client: Client, *, signed_in_ago_s: float, active_ago_s: float) -> None:
    """Move the session's recorded sign-in and last activity into the past."""
    session = client.session
    now = time.time()
    session[SIGNED_IN_AT] = now - signed_in_ago_s
    session[LAST_ACTIVITY] = now - active_ago_s
    session.save()


def login_page_messages(client: Client) -> list[str]:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


# --- Signing in ----------------------------------------------------------------------------------
def test_signing_in_gives_the_session_a_new_key_and_forgets_the_old_one(world: World) -> None:
    client = Client()
    before = client.session  # the visitor's session before signing in (a fixation attempt)
    before["visited"] = True
    before.save()
    old_key = str(before.session_key)

    response = client.post(
        reverse("login"), {"username": "patient.a@example.org", "password": PASSWORD}
    )

    assert response.status_code == 302
    new_key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    assert new_key != old_key
    assert not store(old_key).exists(old_key)
    assert store(new_key).exists(new_key)


def test_signing_in_starts_the_idle_and_the_absolute_clock(world: World) -> None:
    client = Client()
    started = time.time()
    client.post(reverse("login"), {"username": "patient.a@example.org", "password": PASSWORD})

    session = client.session
    assert started <= session[SIGNED_IN_AT] <= time.time()
    assert session[LAST_ACTIVITY] == session[SIGNED_IN_AT]
    # The stored session and the cookie end with the absolute lifetime (plus the short notice time
    # in which only the login page's message can still use it).
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    expected_age = django_settings.SESSION_MAX_AGE_S + END_NOTICE_S
    assert abs(int(cookie["max-age"]) - expected_age) <= 5
    assert abs(session.get_expiry_age() - expected_age) <= 5


def test_the_defaults_are_15_minutes_idle_and_12_hours_in_all() -> None:
    assert django_settings.SESSION_IDLE_TIMEOUT_S == 15 * 60
    assert django_settings.SESSION_MAX_AGE_S == django_settings.SESSION_COOKIE_AGE == 12 * 3600
    assert django_settings.LIVE_MAX_SOCKETS_PER_USER == 2


# --- The idle timeout ----------------------------------------------------------------------------
def test_a_request_within_the_idle_timeout_counts_as_activity(world: World) -> None:
    client = client_for(world, "patient_p")
    shift_clocks(client, signed_in_ago_s=14 * 60, active_ago_s=14 * 60)

    assert client.get(reverse("today")).status_code == 200

    assert time.time() - client.session[LAST_ACTIVITY] < 5


def test_an_idle_session_is_signed_out_with_a_message_on_the_login_page(world: World) -> None:
    client = client_for(world, "therapist_a")
    key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    shift_clocks(client, signed_in_ago_s=16 * 60, active_ago_s=15 * 60 + 1)

    response = client.get(reverse("roster"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse('roster')}"
    assert not store(key).exists(key)
    assert login_page_messages(client) == ["You were signed out after 15 minutes without activity."]
    assert client.get(reverse("roster")).status_code == 302  # still signed out


def test_the_idle_timeout_follows_the_setting(world: World, settings: Any) -> None:
    settings.SESSION_IDLE_TIMEOUT_S = 60
    client = client_for(world, "patient_p")
    shift_clocks(client, signed_in_ago_s=58, active_ago_s=58)
    assert client.get(reverse("today")).status_code == 200
    shift_clocks(client, signed_in_ago_s=120, active_ago_s=61)

    assert client.get(reverse("today")).status_code == 302
    assert login_page_messages(client) == ["You were signed out after 1 minute without activity."]


def test_opening_the_login_page_when_idle_signs_out_there_without_a_redirect(
    world: World,
) -> None:
    client = client_for(world, "patient_p")
    shift_clocks(client, signed_in_ago_s=20 * 60, active_ago_s=20 * 60)

    messages = login_page_messages(client)

    assert messages == ["You were signed out after 15 minutes without activity."]
    assert client.get(reverse("today")).status_code == 302


# --- The absolute lifetime -----------------------------------------------------------------------
def test_a_session_past_its_absolute_lifetime_is_signed_out_even_when_active(
    world: World,
) -> None:
    client = client_for(world, "patient_p")
    shift_clocks(client, signed_in_ago_s=12 * 3600 + 1, active_ago_s=1)

    response = client.get(reverse("today"))

    assert response.status_code == 302
    assert login_page_messages(client) == [
        "You were signed out because sign-ins end after 12 hours. Please sign in again."
    ]


def test_a_session_from_before_these_rules_gets_its_clocks_on_its_next_request(
    world: World,
) -> None:
    client = client_for(world, "patient_p")
    session = client.session
    del session[SIGNED_IN_AT], session[LAST_ACTIVITY]
    session.save()

    assert client.get(reverse("today")).status_code == 200
    assert time.time() - client.session[SIGNED_IN_AT] < 5


# --- The keep-alive endpoint ---------------------------------------------------------------------
def test_asking_how_long_is_left_does_not_count_as_activity(world: World) -> None:
    client = client_for(world, "patient_p")
    shift_clocks(client, signed_in_ago_s=600, active_ago_s=600)
    last_activity = client.session[LAST_ACTIVITY]

    response = client.get(reverse("session_keepalive"))

    assert response.status_code == 200
    assert response.json()["ends"] == "idle"
    assert 295 <= response.json()["remaining_s"] <= 300
    assert client.session[LAST_ACTIVITY] == last_activity


def test_near_the_absolute_end_the_page_is_told_the_lifetime_ends_it(world: World) -> None:
    client = client_for(world, "patient_p")
    shift_clocks(client, signed_in_ago_s=12 * 3600 - 60, active_ago_s=10)

    status = client.get(reverse("session_keepalive")).json()

    assert status["ends"] == "lifetime" and 55 <= status["remaining_s"] <= 60


def test_staying_signed_in_needs_the_csrf_token_and_counts_as_activity(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.p.user)
    shift_clocks(client, signed_in_ago_s=14 * 60, active_ago_s=14 * 60)
    page = client.get(reverse("today"))
    token = page.context["csrf_token"]
    shift_clocks(client, signed_in_ago_s=14 * 60, active_ago_s=14 * 60)

    assert client.post(reverse("session_keepalive")).status_code == 403
    response = client.post(reverse("session_keepalive"), headers={"X-CSRFToken": str(token)})

    assert response.status_code == 204
    assert time.time() - client.session[LAST_ACTIVITY] < 5


def test_the_keep_alive_of_a_visitor_answers_401() -> None:
    client = Client()
    assert client.get(reverse("session_keepalive")).status_code == 401
    assert client.post(reverse("session_keepalive")).status_code == 401


def test_the_keep_alive_of_a_timed_out_session_answers_401_and_the_login_page_says_why(
    world: World,
) -> None:
    client = client_for(world, "patient_p")
    shift_clocks(client, signed_in_ago_s=16 * 60, active_ago_s=16 * 60)

    assert client.get(reverse("session_keepalive")).status_code == 401
    assert login_page_messages(client) == ["You were signed out after 15 minutes without activity."]


# --- The warning in the page ---------------------------------------------------------------------
def test_signed_in_pages_give_the_warning_script_its_numbers(world: World) -> None:
    html = client_for(world, "therapist_a").get(reverse("roster")).content.decode()

    assert 'data-idle-timeout-s="900"' in html
    assert 'data-idle-warning-s="120"' in html
    assert f'data-keepalive-url="{reverse("session_keepalive")}"' in html
    assert 'src="/static/js/session-timeout.js"' in html


def test_a_short_timeout_warns_at_half_of_it(world: World, settings: Any) -> None:
    settings.SESSION_IDLE_TIMEOUT_S = 60
    html = client_for(world, "patient_p").get(reverse("today")).content.decode()
    assert 'data-idle-timeout-s="60"' in html and 'data-idle-warning-s="30"' in html


def test_the_login_page_has_no_timeout_warning(db: None) -> None:
    html = Client().get(reverse("login")).content.decode()
    assert "data-idle-timeout-s" not in html and "session-timeout.js" not in html


# --- Settings from the environment ---------------------------------------------------------------
@pytest.mark.parametrize("value", ["abc", "0", "-60", "1.5"])
def test_a_timeout_that_is_not_a_positive_whole_number_stops_the_start_with_a_clear_error(
    value: str,
) -> None:
    env = {
        **os.environ,
        "SESSION_IDLE_TIMEOUT_S": value,
        "DJANGO_SETTINGS_MODULE": "rehab.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"SESSION_IDLE_TIMEOUT_S must be a positive whole number, not '{value}'" in result.stderr
