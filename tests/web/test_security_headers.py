"""Security headers on every URL of the app: the CSP (no inline script), X-Frame-Options DENY,
nosniff, Referrer-Policy and `Cache-Control: no-store` (web/security_headers.py).

Every route is walked as the actor who owns its object (the access matrix's routes and role
pages), plus every route without arguments, so a new page is covered the day it is added.
"""

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import plotly
import pytest
from django.http import HttpResponseBase
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.conftest import World, client_for
from tests.test_access_matrix import MATRIX, PATIENT_PAGES


def _plain_routes() -> list[str]:
    """The project's route names (admin aside) whose pattern takes no argument."""
    names: list[str] = []

    def walk(patterns: list[Any], namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, pattern.namespace or namespace)
            elif (
                isinstance(pattern, URLPattern) and pattern.name and not pattern.pattern.converters
            ):
                names.append(f"{namespace}:{pattern.name}" if namespace else pattern.name)

    walk(get_resolver().url_patterns, None)
    return sorted({name for name in names if not name.startswith("admin:")})


def policy(response: HttpResponseBase) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy", "")
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: sources for name, *sources in directives}


def assert_secure_headers(response: HttpResponseBase, what: str) -> None:
    csp = policy(response)
    assert csp, f"{what}: no Content-Security-Policy"
    assert csp["script-src"] == ["'self'"], f"{what}: {csp['script-src']}"
    for directive in ("script-src", "style-src", "default-src"):
        assert "'unsafe-inline'" not in csp[directive], f"{what}: {directive} allows inline"
        assert "'unsafe-eval'" not in csp.get(directive, []), f"{what}: {directive} allows eval"
    assert csp["frame-ancestors"] == ["'none'"], what
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"], what
    assert csp["form-action"] == ["'self'"], what
    assert response["X-Frame-Options"] == "DENY", what
    assert response["X-Content-Type-Options"] == "nosniff", what
    assert response["Referrer-Policy"] == "same-origin", what
    assert "no-store" in response.get("Cache-Control", ""), f"{what}: cacheable"


def _owner(allowed: frozenset[str]) -> str:
    return sorted(allowed)[0]


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_every_object_route_answers_its_owner_with_the_security_headers(
    world: World, name: str
) -> None:
    route = MATRIX[name]
    url = reverse(name, kwargs=route.kwargs(world))
    response = getattr(client_for(world, _owner(route.allowed)), route.method)(url)
    assert response.status_code in (200, 302), f"{name}: {response.status_code}"
    assert_secure_headers(response, name)


@pytest.mark.parametrize("name", _plain_routes())
def test_every_plain_route_answers_with_the_security_headers(world: World, name: str) -> None:
    actor = "patient_p" if name in PATIENT_PAGES else "therapist_a"
    for who in (actor, "anonymous"):
        response = client_for(world, who).get(reverse(name))
        # Readiness answers 503 while a service it needs is away (no pose worker in this test).
        allowed = (503,) if name == "health_ready" else ()
        assert response.status_code < 500 or response.status_code in allowed, (
            f"{name} as {who}: {response.status_code}"
        )
        assert_secure_headers(response, f"{name} as {who}")


@pytest.mark.parametrize("actor", ["anonymous", "therapist_b"])
def test_refusals_and_missing_pages_carry_them_too(world: World, actor: str) -> None:
    client = client_for(world, actor)
    for url in (
        reverse("export_csv", args=[world.p.pk]),  # 302 to sign in, or 404 for B
        reverse("report_download", args=[world.a.report.pk]),
        "/no/such/page/",
        reverse("password_set", args=["MQ", "not-a-token"]),
    ):
        assert_secure_headers(client.get(url), f"{url} as {actor}")


def test_downloads_with_patient_data_are_no_store(world: World) -> None:
    client = client_for(world, "therapist_a")
    for name, key in (("export_csv", world.p.pk), ("export_fhir", world.p.pk)):
        response = client.get(reverse(name, args=[key]))
        assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
        assert "no-store" in response["Cache-Control"]
    pdf = client.get(reverse("report_download", args=[world.a.report.pk]))
    assert pdf["Content-Type"] == "application/pdf" and "no-store" in pdf["Cache-Control"]


def test_static_files_stay_cacheable(settings: Any) -> None:
    settings.WHITENOISE_USE_FINDERS = True  # serve from the source folders, as in development
    response = Client().get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_the_live_page_may_open_its_websocket_to_its_own_host_only(world: World) -> None:
    client = client_for(world, "patient_p")
    url = reverse("session_live", args=[world.a.open_session.pk])
    plain = policy(client.get(url))["connect-src"]
    assert plain == ["'self'", "ws://testserver"]
    assert policy(client.get(url, secure=True))["connect-src"] == ["'self'", "wss://testserver"]


def test_the_style_hashes_match_what_the_installed_plotly_injects(settings: Any) -> None:
    """plotly.js adds two <style> elements itself: an empty one filled through the CSSOM and
    MapLibre's stylesheet. After a plotly upgrade this tells which hash to put in settings."""
    bundle = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text("utf-8")
    injected = re.findall(r"\.textContent='((?:[^'\\]|\\.)*)'", bundle)
    assert injected, "plotly.min.js no longer injects a stylesheet this way: re-check the CSP"
    assert (
        'createElement("style"),n.setAttribute("id",i),n.appendChild(document.createTextNode(""))'
        in bundle
    )

    def source(css: str) -> str:
        return f"'sha256-{base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()}'"

    expected = sorted(source(css) for css in ["", *injected])
    assert sorted(settings.PLOTLY_STYLE_HASHES) == expected
