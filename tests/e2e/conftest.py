"""Real headless Chromium (Debian's) driven by Playwright against a live server.

Screenshots land in test-artifacts/ so that a person can look at the pages after a run.
"""

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.processes import Background, production_workers

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    # Playwright's sync API keeps an event loop running in this thread; the ORM calls made by the
    # test itself (fixtures, assertions on rows) are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(autouse=True)
def empty_channel_layer() -> Iterator[None]:
    """With Redis, each test leaves the channel layer empty behind it: a live page that streamed
    with no pose worker running leaves its frames queued until the layer's expiry, which the next
    test's privacy scan would otherwise find."""
    yield
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match="asgi*"):
            client.delete(key)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- The live session: a real ASGI server and a fake webcam --------------------------------------
def start_the_squat(page: Page) -> None:
    """From the patient's Today page: open the squat, start the camera, wait until it is live."""
    squat = page.locator(".plan-item").filter(has=page.get_by_role("heading", name="Squat"))
    squat.get_by_role("button").or_(squat.get_by_role("link")).first.click()
    page.get_by_role("button", name="Start camera").click()
    # "live": the webcam's stream plays and the WebSocket carries frames and answers.
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)


SQUAT_VIDEO = Path(__file__).resolve().parents[1] / "fixtures" / "squat_side_rohanx01.mp4"


@pytest.fixture(scope="session")
def squat_webcam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The side-view squat video as Chromium's fake camera wants it: y4m, 640x480 (the portrait
    video letterboxed), 15 frames/s."""
    clip = tmp_path_factory.mktemp("webcam") / "squat.y4m"
    video_filter = "scale=-2:480,pad=640:480:(ow-iw)/2:0,fps=15"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(SQUAT_VIDEO), "-vf", video_filter,
         "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def launch_with_webcam(playwright: Playwright, video: Path) -> Browser:
    """Chromium whose camera plays `video` (y4m) in a loop; the file is a launch argument."""
    camera = [
        "--use-fake-ui-for-media-stream",  # grant the camera without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + camera)


@pytest.fixture(scope="session")
def webcam_browser(playwright: Playwright, squat_webcam: Path) -> Iterator[Browser]:
    browser = launch_with_webcam(playwright, squat_webcam)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def asgi_server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """daphne serving rehab.asgi (HTTP and WebSockets) in a thread of the test process, so it
    shares the test database, the in-memory one on SQLite included."""
    from daphne.server import Server
    from twisted.internet import reactor

    from rehab.asgi import application

    server = Server(
        application, endpoints=["tcp:port=0:interface=127.0.0.1"], signal_handlers=False
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.listening_addresses and time.monotonic() < deadline:
        time.sleep(0.05)
    host, port = server.listening_addresses[0]
    yield f"http://{host}:{port}"
    reactor.callFromThread(server.stop)


@pytest.fixture
def live_services(transactional_db: None) -> Iterator[list[Background]]:
    """What serves the live page besides the web process: nothing more on the embedded defaults
    (local pose worker processes, eager Celery); with Redis, real `pose_worker` and Celery worker
    processes, as in production. Yields those processes (their output is kept)."""
    if not settings.REDIS_URL:
        yield []
        return
    with production_workers(pose_workers=2) as workers:
        yield workers


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[None]:
    """Celery runs eagerly on the embedded defaults; with Redis, a real worker process."""
    if not settings.REDIS_URL:
        yield
        return
    with production_workers(pose_workers=0):
        yield
