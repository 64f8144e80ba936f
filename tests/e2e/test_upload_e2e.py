"""A patient who cannot exercise live uploads a recording, in real headless Chromium on the demo
clinic: a file that is not a video is refused on the form; the real clip is analysed while the
page follows its progress, and becomes a session with its repetitions, marked as recorded."""

import logging
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import Page, ViewportSize, expect

from sessions.models import ExerciseSession, VideoUpload
from tests.e2e.conftest import screenshot
from tests.privacy import database_findings, redis_findings, text_findings

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SQUATS = Path(__file__).resolve().parents[1] / "fixtures" / "pose_squats.mp4"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


@pytest.fixture
def demo(asgi_server: str, celery_worker: Any) -> str:
    call_command("demo_clinic", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    return asgi_server


@pytest.fixture
def upload_dir(settings: Any, tmp_path: Path) -> Path:
    """A folder of this test's own, on the embedded defaults (the server runs in this process);
    with Redis the Celery worker process uses the default one, shared with other runs."""
    if not settings.REDIS_URL:
        settings.UPLOAD_DIR = tmp_path / "uploads"
    return Path(settings.UPLOAD_DIR)


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def png_named_mp4(folder: Path) -> Path:
    ok, png = cv2.imencode(".png", np.full((48, 64, 3), 200, np.uint8))
    assert ok
    path = folder / "squats.mp4"
    path.write_bytes(png.tobytes())
    return path


def test_a_patient_uploads_a_recording_and_sees_the_session_it_became(
    page: Page, demo: str, upload_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size(DESKTOP)
    sign_in(page, demo, "carla@demo.clinic", "demo-patient")
    page.get_by_role("link", name="Upload a recording").click()
    expect(page.get_by_role("heading", name="Upload a recording")).to_be_visible()
    page.get_by_label("Exercise").select_option(label="Squat (both), 3 × 12, aim for 90°")

    page.get_by_label("Recording").set_input_files(png_named_mp4(tmp_path))
    page.get_by_role("button", name="Upload and analyse").click()
    error = page.locator(".field.has-error .error")
    expect(error).to_have_text(
        "This file is a PNG image, not a video. Choose an MP4, MOV, WebM, MKV or AVI recording."
    )
    assert not VideoUpload.objects.exists()
    screenshot(page, "upload_refused")
    page.set_viewport_size(PHONE)
    screenshot(page, "upload_refused_phone")
    page.set_viewport_size(DESKTOP)

    page.get_by_label("Recording").set_input_files(SQUATS)
    page.get_by_role("button", name="Upload and analyse").click()
    expect(page.locator("#upload-progress")).to_be_visible()
    expect(page.locator("#upload-state")).to_contain_text(re.compile(r"Waiting|Analysing"))
    screenshot(page, "upload_progress")

    open_session = page.get_by_role("link", name="Open the session")
    expect(open_session).to_be_visible(timeout=120_000)
    expect(page.locator("#upload")).to_contain_text("Analysed: 2 repetitions counted (1 partial")
    screenshot(page, "upload_done")
    open_session.click()
    expect(page.get_by_text("From an uploaded recording")).to_be_visible()
    repetitions = page.locator("section").filter(
        has=page.get_by_role("heading", name="Repetitions")
    )
    expect(repetitions.locator("tbody tr")).to_have_count(2)
    expect(repetitions.locator("#chart-session .main-svg").first).to_be_visible()
    screenshot(page, "upload_session")
    page.set_viewport_size(PHONE)
    page.reload()  # the charts are laid out for the width they load at
    expect(repetitions.locator("#chart-session .main-svg").first).to_be_visible()
    screenshot(page, "upload_session_phone")

    upload = VideoUpload.objects.get()
    assert upload.status == VideoUpload.Status.DONE and upload.stored_name == ""
    if not settings.REDIS_URL:
        assert list(upload_dir.iterdir()) == []
    session = upload.session
    assert session is not None and session.source == ExerciseSession.Source.RECORDING
    assert session.repetitions.count() == 2
    findings = database_findings() + text_findings("test process log", caplog.messages)
    if settings.REDIS_URL:
        findings += redis_findings(settings.REDIS_URL)
    assert findings == []
    assert errors == []
