"""The client IP behind N trusted reverse proxies (web/client_ip.py), as axes and the rate
limits see it."""

import os
import subprocess
import sys
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from tests.conftest import World
from web.client_ip import client_ip


def ip(settings: Any, *, proxies: int, remote: str, forwarded: str | None = None) -> str:
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote)
    if forwarded is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(request)


def test_without_a_proxy_the_forwarded_header_is_ignored(settings: Any) -> None:
    assert ip(settings, proxies=0, remote="203.0.113.7", forwarded="198.51.100.1") == "203.0.113.7"


def test_behind_one_proxy_it_is_the_address_the_proxy_saw(settings: Any) -> None:
    # The client wrote the first entry itself; the proxy appended the second.
    forwarded = "198.51.100.1, 203.0.113.7"
    assert ip(settings, proxies=1, remote="10.0.0.2", forwarded=forwarded) == "203.0.113.7"


def test_behind_two_proxies_it_is_the_second_from_the_right(settings: Any) -> None:
    forwarded = "198.51.100.1, 203.0.113.7, 10.0.0.9"
    assert ip(settings, proxies=2, remote="10.0.0.2", forwarded=forwarded) == "203.0.113.7"


def test_ipv6_addresses_are_normalised(settings: Any) -> None:
    forwarded = "2001:DB8:0:0:0:0:0:1"
    assert ip(settings, proxies=1, remote="10.0.0.2", forwarded=forwarded) == "2001:db8::1"


@pytest.mark.parametrize("forwarded", [None, "", "not-an-address", " , "])
def test_a_missing_or_malformed_header_falls_back_to_the_peer(
    settings: Any, forwarded: str | None
) -> None:
    assert ip(settings, proxies=1, remote="10.0.0.2", forwarded=forwarded) == "10.0.0.2"


def test_a_forged_header_does_not_escape_the_sign_in_limit(world: World, settings: Any) -> None:
    """Behind one proxy, a client writing a new X-Forwarded-For each time still counts as the
    address the proxy appended."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login": {"limit": 2, "per_s": 60}}
    client = Client(REMOTE_ADDR="10.0.0.2")
    statuses = [
        client.post(
            reverse("login"),
            {"username": f"nobody{n}@example.org", "password": "wrong"},
            headers={"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.7"},
        ).status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


def _settings_in_a_fresh_process(**env: str) -> subprocess.CompletedProcess[str]:
    code = "from django.conf import settings; print(settings.TRUSTED_PROXY_COUNT)"
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "rehab.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_expects_one_proxy_unless_told_otherwise() -> None:
    production = {
        "REHAB_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "rehab.example.org",
    }
    assert _settings_in_a_fresh_process(**production).stdout.strip() == "1"
    direct = _settings_in_a_fresh_process(**production, DJANGO_TRUSTED_PROXIES="0")
    assert direct.stdout.strip() == "0"


@pytest.mark.parametrize("value", ["two", "-1"])
def test_a_bad_proxy_count_stops_the_start_with_a_clear_error(value: str) -> None:
    result = _settings_in_a_fresh_process(DJANGO_TRUSTED_PROXIES=value)
    assert result.returncode != 0
    assert "DJANGO_TRUSTED_PROXIES must be" in result.stderr
