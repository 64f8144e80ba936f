"""Real dev-set clips as the webcam of a demo patient's live session in headless Chromium: the page
must show the count labelled by eye, the summary must say so and the database must hold exactly
those repetitions (frames over the real WebSocket to real pose workers, as in production).

The clips stay where they are (../shared/data/devset, next to the checkout; they are third-party
footage, not for the repository): without them the test is skipped. Each becomes Chromium's fake
camera: the clip's first frame held still for HOLD_S (the patient is in place while the tracker
checks placement, 1 s, and counts down, 3 s), the clip at FPS, then its last frame held for TAIL_S.
Chromium plays the file in a loop, so the session is ended while the picture is still: after the
clip, during the tail and the next loop's hold, never during a replayed repetition.

Each clip is prescribed to Anna (whose own plan has none of these exercises, so each appears once
on her Today page) through the project's own services, for both sides and as 1 set x 20: more
than any clip's count, so the set never ends early and an over-count would show.
"""

import datetime
import io
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Browser, Page, Playwright, expect

from patients.models import Exercise, Patient
from patients.services import assignment_save, protocol_save
from sessions.models import ExerciseSession
from sessions.pose_client import local_pool
from tests.e2e.conftest import launch_with_webcam, screenshot
from tests.processes import Background

DEVSET = Path(__file__).resolve().parents[3] / "shared" / "data" / "devset"
LABELS = DEVSET / "labels.json"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not LABELS.is_file(),
        reason=f"the dev-set clips are not here ({DEVSET}): they are kept outside the repository",
    ),
]

FPS = 15  # the page sends at most 15 frames/s (static/js/live/camera.js MAX_FPS)
# The first frame, still: placement (1 s) and countdown (3 s) from the first answer, which comes
# about 0.5 s after the camera starts (warm pose workers): counting starts about 4.5 s after the
# camera, 1.5 s or more before the first repetition's descent (the squat's first bottom is 1.0 s
# into its clip).
HOLD_S = 6.0
TAIL_S = 3.0  # the last frame, still, before Chromium starts the file again
# After the clip, the answers to its last frames still have to come back: the session is ended
# this long after the clip has played once (inside the still tail + the next loop's hold).
END_AFTER_CLIP_S = 3.0
SETS, REPS = 1, 20
PATIENT, PASSWORD, FIRST_NAME = "anna@demo.clinic", "demo-patient", "Anna"


@dataclass(frozen=True)
class Clip:
    file: str
    exercise: str  # slug, as labelled
    reps: int
    partial_reps: int
    duration_s: float
    turning_points_s: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.file.removesuffix(".mp4")


# Front views of both limbs moving together, high confidence, starting and ending at rest.
CLIP_FILES = ["Vaidansh__squat1.mp4", "swsumo__bicep.mp4", "NoorAshraf__lateral_raise.mp4"]


def load_clip(file: str) -> Clip:
    label = next(row for row in json.loads(LABELS.read_text()) if row["file"] == file)
    assert label["confidence"] == "high" and label["moving_side"] == "both", label
    assert not label["starts_mid_rep"] and not label["ends_mid_rep"], label
    return Clip(
        file=file,
        exercise=label["exercise"],
        reps=label["reps"],
        partial_reps=label["partial_reps"],
        duration_s=label["frames"] / label["fps"],
        turning_points_s=tuple(label["turning_points_s"]),
    )


@pytest.fixture(params=CLIP_FILES, ids=lambda file: file.removesuffix(".mp4"))
def clip(request: pytest.FixtureRequest) -> Clip:
    return load_clip(request.param)


@pytest.fixture
def clip_webcam(clip: Clip, tmp_path: Path) -> Iterator[Path]:
    """The clip as Chromium's fake camera wants it: y4m, yuv420p, 640x480 (letterboxed), FPS
    constant; the first frame held HOLD_S before it, the last TAIL_S after it."""
    video = tmp_path / f"{clip.name}.y4m"
    video_filter = (
        f"fps={FPS},scale=640:480:force_original_aspect_ratio=decrease,"
        "pad=640:480:(ow-iw)/2:(oh-ih)/2,setsar=1,"
        f"tpad=start_mode=clone:start_duration={HOLD_S}:stop_mode=clone:stop_duration={TAIL_S},"
        "format=yuv420p"
    )
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(DEVSET / clip.file), "-vf", video_filter,
         "-an", str(video)],
        check=True,
    )  # fmt: skip
    yield video
    video.unlink(missing_ok=True)  # about 0.5 MB a frame


@pytest.fixture
def clip_browser(playwright: Playwright, clip_webcam: Path) -> Iterator[Browser]:
    """A Chromium of its own per clip: the fake camera's file is a launch argument."""
    browser = launch_with_webcam(playwright, clip_webcam)
    yield browser
    browser.close()


@pytest.fixture
def pose_workers_loaded(live_services: list[Background]) -> None:
    """The pose models loaded before the camera starts: the clip's timing leaves no room for
    loading them on its first frames (about 4 s here). On the embedded defaults the web process
    starts its local pose workers when the live page opens; this starts them now and waits until
    they have loaded (with Redis, production_workers waits until its pose workers are ready)."""
    if settings.POSE_TRANSPORT != "local":
        return
    pool = local_pool()
    for started in [pool.submit(os.getpid) for _ in range(settings.POSE_LOCAL_WORKERS)]:
        started.result(timeout=120)


def prescribe_to_anna(exercise_slug: str) -> None:
    """A protocol with the clip's exercise, written by Anna's therapist and assigned to her from
    today, as the protocol builder and assignment form would save them."""
    anna = Patient.objects.select_related("therapist").get(user__username=PATIENT)
    exercise = Exercise.objects.get(owner__isnull=True, slug=exercise_slug)
    line = {
        "exercise": exercise,
        "side": "both",
        "sets": SETS,
        "reps": REPS,
        "hold_s": 0,
        "rest_s": 60,
        "target_rom_deg": None,  # the exercise's default
        "sessions_per_week": 3,
        "notes": "",
    }
    protocol = protocol_save(
        therapist=anna.therapist, protocol=None, name="Real clips", notes="", lines=[line]
    )
    today = timezone.localdate()
    assignment_save(
        patient=anna,
        protocol=protocol,
        start_date=today,
        end_date=today + datetime.timedelta(days=7),
    )


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("E-mail").fill(PATIENT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Hello {FIRST_NAME}")).to_be_visible()


def open_the_exercise(page: Page, name: str) -> None:
    """From Today: start the exercise's session (the live page, before the camera starts)."""
    heading = page.get_by_role("heading", name=name, exact=True)
    item = page.locator(".plan-item").filter(has=heading)
    item.get_by_role("button").or_(item.get_by_role("link")).first.click()
    expect(page.get_by_role("button", name="Start camera")).to_be_visible()


# What the page showed, with the time since the camera started: stage, placement message, count,
# cue, notice ("not counted: ...") and connection, recorded in the page as they change; printed
# with the labelled turning points, and part of every failure message.
TIMELINE_SCRIPT = """
window.__timeline = [];
window.__timelineStart = null;
document.addEventListener("DOMContentLoaded", () => {
  const watched = [
    ["stage", "#live", (e) => e.dataset.stage || ""],
    ["placement", "#placement", (e) => (e.hidden ? "" : e.textContent)],
    ["reps", "#rep-counter", (e) => e.dataset.reps],
    ["cue", "#cue", (e) => e.textContent],
    ["notice", "#notice", (e) => (e.hidden ? "" : e.textContent)],
    ["connection", "#connection", (e) => e.dataset.state],
  ];
  const last = {};
  const record = () => {
    for (const [what, selector, read] of watched) {
      const element = document.querySelector(selector);
      if (!element) continue;
      const value = read(element);
      if (value === last[what]) continue;
      last[what] = value;
      const start = window.__timelineStart ?? performance.now();
      window.__timeline.push([(performance.now() - start) / 1000, what, value]);
    }
  };
  new MutationObserver(record).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
});
"""


def timeline(page: Page) -> list[tuple[float, str, str]]:
    return [(round(t, 2), what, value) for t, what, value in page.evaluate("window.__timeline")]


def describe(clip: Clip, events: list[tuple[float, str, str]]) -> str:
    """The page's timeline next to the labelled turning points (on the camera's clock)."""
    turning = ", ".join(f"{HOLD_S + t:.1f}" for t in clip.turning_points_s)
    lines = [f"{clip.file}: labelled turning points at {turning} s after the camera started"]
    lines += [f"  {t:7.2f} s  {what}: {value!r}" for t, what, value in events]
    return "\n".join(lines)


def test_the_live_page_counts_the_labelled_repetitions_of_a_real_clip(
    clip: Clip,
    clip_browser: Browser,
    asgi_server: str,
    pose_workers_loaded: None,
) -> None:
    call_command("demo_clinic", verbosity=0, stdout=io.StringIO())
    prescribe_to_anna(clip.exercise)
    exercise_name = Exercise.objects.get(owner__isnull=True, slug=clip.exercise).name
    context = clip_browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(TIMELINE_SCRIPT)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())  # "end with repetitions still to do?"
    sign_in(page, asgi_server)
    open_the_exercise(page, exercise_name)

    # Chromium's fake camera starts its file when the page opens the camera.
    page.evaluate("window.__timelineStart = performance.now()")
    camera_started = time.monotonic()
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)
    end_at = camera_started + HOLD_S + clip.duration_s + END_AFTER_CLIP_S
    page.wait_for_timeout(max(0.0, end_at - time.monotonic()) * 1000)
    shown = int(page.locator("#rep-counter").get_attribute("data-reps") or -1)
    live_shot = screenshot(page, f"live_clip_{clip.name}")
    page.get_by_role("button", name="End session").click()

    expect(page.locator("#summary")).to_be_visible(timeout=15_000)
    summary_total = page.locator("#summary-total").inner_text()
    summary_shot = screenshot(page, f"live_clip_{clip.name}_summary")
    events = timeline(page)
    context.close()

    anna = Patient.objects.get(user__username=PATIENT)
    session = ExerciseSession.objects.filter(patient=anna, exercise__slug=clip.exercise).latest(
        "started_at"
    )
    deadline = time.monotonic() + 20  # with Redis a Celery worker process writes them
    while session.repetitions.count() < shown and time.monotonic() < deadline:
        time.sleep(0.2)
    stored = list(session.repetitions.order_by("set_number", "index"))

    seen = describe(clip, events) + (
        f"\n  partial repetitions: {session.partial_reps} (labelled: {clip.partial_reps})"
        f"\n  screenshots: {live_shot}, {summary_shot}"
    )
    print(seen)  # pytest -rP shows it for a passing clip too
    assert shown == clip.reps, f"the page counted {shown} of {clip.reps}\n{seen}"
    assert summary_total == str(clip.reps), f"the summary says {summary_total}\n{seen}"
    assert session.status == ExerciseSession.Status.COMPLETED
    assert session.reps_counted == clip.reps
    expected_rows = [(1, index) for index in range(1, clip.reps + 1)]
    assert [(row.set_number, row.index) for row in stored] == expected_rows, seen
    assert problems == []
