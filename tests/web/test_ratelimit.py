"""Rate limits on sign-in, invitation links, report requests and exports (web/ratelimit.py)."""

import socket
import time
from typing import Any, cast

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD, World, client_for
from web.ratelimit import Rate, rate_hit, rate_limited, rate_of


def limit(settings: Any, key: str, *, to: int, per_s: int = 3600) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, key: {"limit": to, "per_s": per_s}}


def export_url(world: World) -> str:
    return reverse("export_csv", args=[world.p.pk])


def test_the_request_over_the_limit_gets_429_with_retry_after(world: World, settings: Any) -> None:
    limit(settings, "export", to=3)
    client = client_for(world, "therapist_a")
    assert [client.get(export_url(world)).status_code for _ in range(3)] == [200, 200, 200]
    response = client.get(export_url(world))
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600
    page = response.content.decode()
    assert "Too many requests" in page and "Please try again in" in page
    assert "no-store" in response["Cache-Control"]


def test_the_exports_and_the_report_download_share_one_limit(world: World, settings: Any) -> None:
    limit(settings, "export", to=3)
    client = client_for(world, "therapist_a")
    urls = [
        reverse("export_csv", args=[world.p.pk]),
        reverse("export_fhir", args=[world.p.pk]),
        reverse("report_download", args=[world.a.report.pk]),
    ]
    assert [client.get(url).status_code for url in urls] == [200, 200, 200]
    assert [client.get(url).status_code for url in urls] == [429, 429, 429]


def test_other_users_are_unaffected(world: World, settings: Any) -> None:
    limit(settings, "export", to=2)
    therapist = client_for(world, "therapist_a")
    for _ in range(3):
        therapist.get(export_url(world))
    assert therapist.get(export_url(world)).status_code == 429
    # The patient downloads their own data, the other therapist theirs: their own counters.
    assert client_for(world, "patient_p").get(export_url(world)).status_code == 200
    other = reverse("export_csv", args=[world.q.pk])
    assert client_for(world, "therapist_b").get(other).status_code == 200


def test_a_users_two_browsers_share_one_counter(world: World, settings: Any) -> None:
    limit(settings, "export", to=4)
    laptop, tablet = client_for(world, "therapist_a"), client_for(world, "therapist_a")
    statuses = [client.get(export_url(world)).status_code for client in (laptop, tablet) * 3]
    assert statuses == [200, 200, 200, 200, 429, 429]


def test_the_window_resets(world: World, settings: Any) -> None:
    limit(settings, "export", to=2, per_s=2)
    client = client_for(world, "therapist_a")
    statuses = [client.get(export_url(world)).status_code for _ in range(3)]
    while statuses[-1] != 429:  # the window turned between two requests: count again
        statuses = [client.get(export_url(world)).status_code for _ in range(3)]
    response = client.get(export_url(world))
    assert response.status_code == 429
    time.sleep(int(response["Retry-After"]))
    assert client.get(export_url(world)).status_code == 200


def test_sign_in_posts_are_counted_per_ip(world: World, settings: Any) -> None:
    limit(settings, "login", to=3, per_s=60)
    client = Client(REMOTE_ADDR="10.0.0.1")
    for n in range(3):  # a different login each time: axes' per-login lockout stays out of it
        wrong = {"username": f"nobody{n}@example.org", "password": "wrong"}
        assert client.post(reverse("login"), wrong).status_code == 200
    assert client.get(reverse("login")).status_code == 200  # showing the form is not counted
    right = {"username": "therapist.a@example.org", "password": PASSWORD}
    assert client.post(reverse("login"), right).status_code == 429
    assert Client(REMOTE_ADDR="10.0.0.2").post(reverse("login"), right).status_code == 302


def test_invitation_links_are_counted_per_ip(world: World, settings: Any) -> None:
    limit(settings, "password_set", to=2)
    url = reverse("password_set", args=["MQ", "set-password"])
    client = Client(REMOTE_ADDR="10.0.0.1")
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 429]
    assert Client(REMOTE_ADDR="10.0.0.2").get(url).status_code == 200


def test_report_requests_are_counted_per_therapist_on_post_only(
    world: World, settings: Any
) -> None:
    limit(settings, "report_new", to=2)
    client = client_for(world, "therapist_a")
    url = reverse("report_new", args=[world.p.pk])
    today = timezone.localdate()
    form = {"first_day": f"{today.replace(day=1)}", "last_day": f"{today}", "plan": "Review"}
    assert [client.post(url, form).status_code for _ in range(3)] == [302, 302, 429]
    assert client.get(url).status_code == 200


def test_clients_that_do_not_take_html_get_json(world: World, settings: Any) -> None:
    limit(settings, "export", to=1)
    client = client_for(world, "therapist_a")
    url = reverse("export_fhir", args=[world.p.pk])
    client.get(url)
    response = client.get(url, headers={"Accept": "application/fhir+json"})
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "rate_limited"
    assert body["retry_after_s"] == int(response["Retry-After"])
    assert "Try again in" in body["detail"]


def test_a_counter_that_expires_between_add_and_incr_starts_again(settings: Any) -> None:
    rate = Rate(limit=2, per_s=60)
    now = 120.0
    assert rate_hit(key="t", identity="ip:1", rate=rate, now=now).count == 1
    cache.delete("ratelimit:t:ip:1:2")  # what expiry does between the two cache calls
    assert rate_hit(key="t", identity="ip:1", rate=rate, now=now).count == 1
    assert rate_hit(key="t", identity="ip:1", rate=rate, now=now).allowed


@pytest.mark.parametrize(
    "entry",
    [None, {"limit": 5}, {"limit": "many", "per_s": 60}, {"limit": 0, "per_s": 60}, (5, 60)],
)
def test_a_malformed_limit_is_a_clear_configuration_error(settings: Any, entry: Any) -> None:
    settings.RATE_LIMITS = {"export": entry}
    with pytest.raises(ImproperlyConfigured, match=r"RATE_LIMITS\['export'\]"):
        rate_of(key="export")


def test_an_unknown_key_fails_when_the_view_is_decorated() -> None:
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMITS"):
        rate_limited(key="exprot")


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="the shared counter needs Redis")
def test_with_redis_every_process_counts_against_the_same_limit(
    world: World, settings: Any
) -> None:
    """What another web process writes, this one reads: the counter is one Redis key."""
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    limit(settings, "export", to=5)
    client = client_for(world, "therapist_a")
    assert client.get(export_url(world)).status_code == 200
    other_process = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    user = world.a.therapist.user.pk
    # redis-py types its answers for both its sync and async clients: this one is sync.
    [key] = cast(list[str], other_process.keys(f"{prefix}:1:ratelimit:export:user:{user}:*"))
    assert int(cast(str, other_process.get(key))) == 1
    other_process.incrby(key, 4)  # four downloads served by another process
    assert client.get(export_url(world)).status_code == 429
    assert client_for(world, "patient_p").get(export_url(world)).status_code == 200


def test_with_the_counters_redis_away_requests_are_served_and_a_warning_logged(
    world: World, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]  # nothing listens there once the probe is closed
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    limit(settings, "export", to=1)
    client = client_for(world, "therapist_a")
    assert [client.get(export_url(world)).status_code for _ in range(2)] == [200, 200]
    right = {"username": "therapist.a@example.org", "password": PASSWORD}
    assert Client().post(reverse("login"), right).status_code == 302
    assert "rate limit 'export' not counted: its cache is unreachable" in caplog.messages
    assert "rate limit 'login' not counted: its cache is unreachable" in caplog.messages
