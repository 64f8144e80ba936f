"""Login lockout (django-axes, web/lockout.py): 5 failures for one login from one IP lock that
pair for 15 minutes, the right password included; the page says until when."""

import datetime
import re
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync
from axes.models import AccessAttempt
from django.conf import settings
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD, World

if TYPE_CHECKING:  # the test client's response type exists in django-stubs only
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

LOGIN = "therapist.a@example.org"


def sign_in(client: Client, username: str = LOGIN, password: str = PASSWORD) -> "Response":
    return client.post(reverse("login"), {"username": username, "password": password})


def fail(client: Client, times: int, username: str = LOGIN) -> list[int]:
    return [sign_in(client, username, "wrong").status_code for _ in range(times)]


def signed_in(client: Client) -> bool:
    return client.get(reverse("roster")).status_code == 200


def test_five_wrong_passwords_lock_out_even_the_right_one(world: World) -> None:
    client = Client(REMOTE_ADDR="10.0.0.1")
    assert fail(client, 5) == [200, 200, 200, 200, 429]
    response = sign_in(client)
    assert response.status_code == 429
    assert not signed_in(client)


def test_four_wrong_passwords_do_not(world: World) -> None:
    client = Client(REMOTE_ADDR="10.0.0.1")
    assert fail(client, 4) == [200] * 4
    assert sign_in(client).status_code == 302
    assert signed_in(client)


def test_the_lockout_page_says_when_to_try_again(world: World) -> None:
    client = Client(REMOTE_ADDR="10.0.0.1")
    fail(client, 5)
    before = timezone.localtime()
    response = sign_in(client)
    after = timezone.localtime()
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    until = re.search(r"Please try again after (\d\d:\d\d)", page)
    assert until, page
    cool_off = datetime.timedelta(minutes=15)
    allowed = {f"{(moment + cool_off):%H:%M}" for moment in (before, after)}
    assert until.group(1) in allowed
    assert "15 minutes" in page
    assert "no-store" in response["Cache-Control"]


def test_the_page_never_names_the_login_and_reads_the_same_for_unknown_ones(
    world: World,
) -> None:
    known, unknown = Client(REMOTE_ADDR="10.0.0.1"), Client(REMOTE_ADDR="10.0.0.2")
    fail(known, 5)
    fail(unknown, 5, username="nobody@example.org")
    pages = [sign_in(known), sign_in(unknown, "nobody@example.org")]
    assert [page.status_code for page in pages] == [429, 429]
    texts = [re.sub(r"\d\d:\d\d", "HH:MM", page.content.decode()) for page in pages]
    assert texts[0] == texts[1]
    assert LOGIN not in texts[0] and "therapist.a" not in texts[0]


def test_another_ip_or_another_login_is_unaffected(world: World) -> None:
    fail(Client(REMOTE_ADDR="10.0.0.1"), 5)
    elsewhere = Client(REMOTE_ADDR="10.0.0.2")
    assert sign_in(elsewhere).status_code == 302 and signed_in(elsewhere)
    colleague = Client(REMOTE_ADDR="10.0.0.1")
    response = sign_in(colleague, "therapist.b@example.org")
    assert response.status_code == 302 and signed_in(colleague)


def test_a_login_counts_the_same_in_any_case_and_spacing(world: World) -> None:
    client = Client(REMOTE_ADDR="10.0.0.1")
    for spelling in ("Therapist.A@example.org", " therapist.a@EXAMPLE.org", LOGIN, LOGIN):
        assert sign_in(client, spelling, "wrong").status_code == 200
    assert sign_in(client, "THERAPIST.A@example.org ", "wrong").status_code == 429
    assert sign_in(client).status_code == 429


def test_the_lock_lifts_after_the_cool_off(world: World) -> None:
    client = Client(REMOTE_ADDR="10.0.0.1")
    fail(client, 5)
    cool_off: datetime.timedelta = settings.AXES_COOLOFF_TIME
    AccessAttempt.objects.filter(username=LOGIN).update(
        attempt_time=timezone.now() - cool_off - datetime.timedelta(seconds=1)
    )
    assert sign_in(client).status_code == 302
    assert signed_in(client)


def test_a_successful_sign_in_forgets_the_failures_before_it(world: World) -> None:
    client = Client(REMOTE_ADDR="10.0.0.1")
    fail(client, 4)
    assert sign_in(client).status_code == 302
    client.post(reverse("logout"))
    assert fail(client, 4) == [200] * 4


def test_the_lockout_page_is_served_over_asgi_too(world: World) -> None:
    """daphne runs the middleware chain asynchronously: axes' async path calls the lockout page
    with other arguments than its sync path."""
    client = AsyncClient(REMOTE_ADDR="10.0.0.1")
    wrong = {"username": LOGIN, "password": "wrong"}
    statuses = [async_to_sync(client.post)(reverse("login"), wrong).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    response = async_to_sync(client.post)(reverse("login"), {**wrong, "password": PASSWORD})
    assert response.status_code == 429
    assert "Please try again after" in response.content.decode()


def test_axes_middleware_comes_last() -> None:
    """Axes' docs: its middleware must be the last one, to turn a locked-out sign-in into the
    lockout page after every other middleware has run."""
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
