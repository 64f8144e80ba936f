"""Uploaded recordings: real video through the real forms and the real Celery task (eager), the
files each limit refuses, who may upload and see what, and the file deleted whatever happens."""

import datetime
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import SkipFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analysis.exports import tracks_from_npz
from analysis.video import read_frames
from patients.models import Exercise, Prescription
from rehab.celery import app as celery_app
from sessions import uploads
from sessions.models import Alert, ExerciseSession, VideoUpload
from sessions.tasks import analyse_upload, sweep_uploads
from sessions.uploads import (
    ANALYSERS,
    INTERRUPTED,
    NOBODY,
    UNEXPECTED,
    Analyser,
    Recording,
    VideoUploadHandler,
)
from tests.conftest import CAST, World, client_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SQUATS = FIXTURES / "pose_squats.mp4"  # 65 frames at 5 fps: 2 squats and a 3rd cut off


def stored_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def squat_line(world: World) -> Prescription:
    """Patient P's wall squat (a squat), right, 2 x 3, aim for 90°: on the plan, with a live
    session of it open today."""
    return world.a.protocol.prescriptions.order_by("position")[1]


def video_file(data: bytes, name: str = "my squats.mp4") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="video/mp4")


def write_video(path: Path, frames: list[np.ndarray], fps: float, fourcc: str = "mp4v") -> bytes:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def queued_tasks(callbacks: list[Callable[[], Any]]) -> list[str]:
    """The Celery tasks that `delay_on_commit` left to run after the commit."""
    return [callback.func.__self__.name for callback in callbacks]  # type: ignore[attr-defined]


@pytest.fixture
def celery_with_a_broker() -> Iterator[None]:
    """Tasks sent to the broker, as with Redis (nothing here consumes them)."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager


# --- Bad files, made here ------------------------------------------------------------------------
def png_renamed(tmp: Path) -> bytes:
    ok, png = cv2.imencode(".png", np.full((48, 64, 3), 200, np.uint8))
    assert ok
    return png.tobytes()


def text_file(tmp: Path) -> bytes:
    return b"Squats, 3 sets of 12, done on Monday.\n"


def empty_file(tmp: Path) -> bytes:
    return b""


def truncated_mp4(tmp: Path) -> bytes:
    data = SQUATS.read_bytes()
    return data[: len(data) // 2]  # its index (moov) is at the end: gone


def eleven_minutes(tmp: Path) -> bytes:
    """Few pixels, long: 601 frames at 1 frame/s, 10 min 1 s."""
    frames = [np.full((32, 32, 3), i % 250, np.uint8) for i in range(601)]
    return write_video(tmp / "long.mp4", frames, fps=1.0)


def eight_k(tmp: Path) -> bytes:
    frames = [np.zeros((4320, 7680, 3), np.uint8)] * 2
    return write_video(tmp / "8k.mp4", frames, fps=5.0)


BAD_FILES = {
    "png renamed": (png_renamed, "This file is a PNG image, not a video."),
    "text": (text_file, "This file is not a video. Choose an MP4, MOV, WebM, MKV or AVI"),
    "empty": (empty_file, "The file is empty."),
    "truncated": (truncated_mp4, "The video could not be read: the file is incomplete"),
    "too long": (eleven_minutes, "The video is 10 min 1 s long; at most 10 min can be analysed."),
    "8K": (eight_k, "The video&#x27;s frames are 7680×4320 pixels; at most 3840 pixels"),
}


# --- A real recording through the form and the task -----------------------------------------------
def test_a_patients_recording_becomes_a_recorded_session_with_its_repetitions_and_no_file(
    world: World,
    upload_dir: Path,
    django_capture_on_commit_callbacks: Any,
    eager_celery: None,
) -> None:
    line = squat_line(world)
    client = client_for(world, "patient_p")
    assert reverse("upload_new") in client.get(reverse("today")).content.decode()
    with django_capture_on_commit_callbacks() as dispatched:
        response = client.post(
            reverse("upload_new"),
            {"prescription": line.pk, "video": video_file(SQUATS.read_bytes())},
        )
    upload = VideoUpload.objects.get(patient=world.p)
    assert response["Location"] == reverse("upload_detail", args=[upload.pk])
    assert len(dispatched) == 1  # queued once the row is committed, not before
    # Waiting: the file under a random name, readable by the server's user only.
    assert upload.status == VideoUpload.Status.QUEUED and upload.frames_total == 65
    assert (upload.exercise, upload.side, upload.prescription) == (line.exercise, "right", line)
    assert stored_files(upload_dir) == [upload.stored_name]
    assert "squats" not in upload.stored_name
    assert upload_dir.stat().st_mode & 0o777 == 0o700
    assert (upload_dir / upload.stored_name).stat().st_mode & 0o777 == 0o600
    assert "Waiting for its turn" in client.get(response["Location"]).content.decode()

    started = time.perf_counter()
    with django_capture_on_commit_callbacks(execute=True) as follow_ups:
        analyse_upload(str(upload.pk))
    print(f"analysis of {SQUATS.name}: {time.perf_counter() - started:.1f} s")  # noqa: T201

    upload.refresh_from_db()
    assert upload.status == VideoUpload.Status.DONE and upload.error == ""
    assert (upload.frames_done, upload.frames_total, upload.stored_name) == (65, 65, "")
    assert stored_files(upload_dir) == []
    session = upload.session
    assert session is not None and session != world.a.open_session  # not merged into it
    assert world.a.open_session.repetitions.count() == 0
    assert session.source == ExerciseSession.Source.RECORDING
    assert session.status == ExerciseSession.Status.COMPLETED
    assert session.started_at == upload.created_at
    assert session.duration_s == pytest.approx(13.0)  # 65 frames at 5 frames/s
    assert (session.target_sets, session.target_reps, session.target_rom_deg) == (2, 3, 90.0)
    assert (session.reps_counted, session.partial_reps) == (2, 1)
    reps = list(session.repetitions.order_by("set_number", "index"))
    assert [(rep.set_number, rep.index) for rep in reps] == [(1, 1), (1, 2)]
    assert all(rep.rom_deg > 60 and rep.trace_deg for rep in reps)
    assert session.outcome == ExerciseSession.Outcome.PARTLY_DONE
    # The same follow-up as a finished live session: the patient's alerts, refreshed.
    assert queued_tasks(follow_ups) == ["sessions.tasks.alerts_refresh_patient"]
    assert Alert.objects.filter(patient=world.p, key="missed_sessions").exists()
    # The landmarks are kept (numbers only): one person, every frame.
    landmarks = tracks_from_npz(bytes(upload.landmarks or b""))
    assert [len(track.poses) for track in landmarks.tracks] == [65]
    assert (landmarks.image_size, landmarks.fps) == ((720, 1280), 5.0)

    analyse_upload(str(upload.pk))  # delivered twice: claimed once
    assert ExerciseSession.objects.filter(upload__isnull=False).count() == 1
    page = client.get(reverse("upload_detail", args=[upload.pk])).content.decode()
    assert "2 repetitions</strong> counted (1 partial" in page
    assert reverse("session_detail", args=[session.pk]) in page
    detail = client.get(reverse("session_detail", args=[session.pk])).content.decode()
    assert "From an uploaded recording" in detail


def test_with_a_broker_the_analysis_is_sent_to_celery_after_the_commit(
    world: World, django_capture_on_commit_callbacks: Any, celery_with_a_broker: None
) -> None:
    with django_capture_on_commit_callbacks() as dispatched:
        client_for(world, "patient_p").post(
            reverse("upload_new"),
            {"prescription": squat_line(world).pk, "video": video_file(SQUATS.read_bytes())},
        )
    assert queued_tasks(dispatched) == ["sessions.tasks.analyse_upload"]
    assert dispatched[0].args == (str(VideoUpload.objects.get().pk),)


@pytest.mark.django_db(transaction=True)
def test_a_therapists_clinic_recording_is_analysed_in_the_background_on_embedded_defaults(
    world: World, upload_dir: Path, eager_celery: None
) -> None:
    """Without Redis the analysis runs in a thread of the web process, one at a time: the request
    returns at once, and an upload waiting for its turn says so."""
    squat = Exercise.objects.get(slug="squat", owner=None)
    client = client_for(world, "therapist_a")
    form_page = client.get(reverse("upload_for_patient", args=[world.p.pk])).content.decode()
    assert f"exercise:{squat.pk}" in form_page and "Pat A&#x27;s prescriptions" in form_page
    with uploads._LOCAL_ANALYSES:  # another analysis is running
        form = {"exercise": f"exercise:{squat.pk}", "side": "both"}
        response = client.post(
            reverse("upload_for_patient", args=[world.p.pk]),
            {**form, "video": video_file(SQUATS.read_bytes())},
        )
        upload = VideoUpload.objects.get(patient=world.p)
        assert response["Location"] == reverse("upload_detail", args=[upload.pk])
        assert wait_for_status(client, upload)["status"] == "queued"
        [analysis] = [t for t in threading.enumerate() if t.name == f"upload-{upload.pk}"]
    analysis.join(timeout=120)
    status = wait_for_status(client, upload)
    assert (status["status"], status["error"], status["percent"]) == ("done", "", 100)
    upload.refresh_from_db()
    session = upload.session
    assert session is not None and session.prescription is None
    assert upload.uploaded_by == world.a.therapist.user
    # A library exercise: one set of what was done, towards the exercise's default target.
    assert (session.side, session.target_sets, session.target_reps) == ("both", 1, 2)
    assert session.target_rom_deg == squat.default_target_deg
    assert session.outcome == ExerciseSession.Outcome.DONE
    assert status["session_url"] == reverse("session_detail", args=[session.pk])
    assert stored_files(upload_dir) == []
    patient_page = client.get(reverse("patient_detail", args=[world.p.pk])).content.decode()
    assert reverse("upload_detail", args=[upload.pk]) in patient_page


def wait_for_status(client: Any, upload: VideoUpload) -> dict[str, Any]:
    response = client.get(reverse("upload_status", args=[upload.pk]))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    status: dict[str, Any] = response.json()
    return status


# --- What is refused, and what is left of it: nothing ---------------------------------------------
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("bad")
    return {name: make(tmp) for name, (make, _) in BAD_FILES.items()}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_file_gets_a_clear_error_on_the_form_and_leaves_nothing(
    world: World, upload_dir: Path, bad_files: dict[str, bytes], kind: str
) -> None:
    sessions_before = ExerciseSession.objects.count()
    response = client_for(world, "patient_p").post(
        reverse("upload_new"),
        {"prescription": squat_line(world).pk, "video": video_file(bad_files[kind])},
    )
    assert response.status_code == 200
    assert BAD_FILES[kind][1] in response.content.decode()
    assert not VideoUpload.objects.exists()
    assert ExerciseSession.objects.count() == sessions_before
    assert stored_files(upload_dir) == []


def test_a_file_over_the_size_limit_is_refused_while_it_streams(
    world: World, upload_dir: Path, settings: Any
) -> None:
    settings.UPLOAD_MAX_BYTES = 1024 * 1024
    big = (FIXTURES / "squat_side_rohanx01.mp4").read_bytes()  # 2.4 MB
    response = client_for(world, "patient_p").post(
        reverse("upload_new"), {"prescription": squat_line(world).pk, "video": video_file(big)}
    )
    assert "The file is larger than 1 MB. Trim the recording" in response.content.decode()
    assert not VideoUpload.objects.exists() and stored_files(upload_dir) == []


def test_the_handler_stops_writing_at_the_limit_chunk_by_chunk(
    upload_dir: Path, settings: Any
) -> None:
    settings.UPLOAD_MAX_BYTES = 150_000
    handler = VideoUploadHandler()
    handler.new_file("video", "clip.mp4", "video/mp4", None)
    handler.receive_data_chunk(b"\0" * 100_000, 0)
    [partial] = upload_dir.iterdir()
    assert partial.stat().st_size == 100_000
    with pytest.raises(SkipFile):
        handler.receive_data_chunk(b"\0" * 100_000, 100_000)  # would make 200 kB
    assert stored_files(upload_dir) == [] and "larger than" in handler.refusal
    with pytest.raises(SkipFile):
        handler.new_file("avatar", "me.png", "image/png", None)  # only the video field


@pytest.fixture
def faststart_squats(tmp_path: Path) -> Path:
    """The squat clip with its index before its frames (as phones and web tools write it)."""
    out = tmp_path / "faststart.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(SQUATS), "-c", "copy", "-movflags", "+faststart",
         str(out)],
        check=True,
    )  # fmt: skip
    return out


def queued_upload(client: Any, world: World, data: bytes) -> VideoUpload:
    response = client.post(
        reverse("upload_new"), {"prescription": squat_line(world).pk, "video": video_file(data)}
    )
    assert response.status_code == 302, response.content.decode()
    return VideoUpload.objects.get(pk=response["Location"].split("/")[-2])


def test_a_file_cut_short_that_still_opens_fails_during_the_analysis_and_leaves_nothing(
    world: World, upload_dir: Path, faststart_squats: Path
) -> None:
    data = faststart_squats.read_bytes()
    client = client_for(world, "patient_p")
    upload = queued_upload(client, world, data[: len(data) // 2])  # its index says 65 frames
    analyse_upload(str(upload.pk))
    upload.refresh_from_db()
    assert upload.status == VideoUpload.Status.FAILED and upload.session is None
    assert upload.error.startswith("The recording stops after ")
    assert "of the 13 s its file announces: the file is incomplete" in upload.error
    assert stored_files(upload_dir) == [] and upload.stored_name == ""
    page = client.get(reverse("upload_detail", args=[upload.pk])).content.decode()
    assert "The recording could not be analysed. The recording stops after" in page


def test_a_recording_without_anybody_fails_with_a_clear_message(
    world: World, upload_dir: Path, tmp_path: Path
) -> None:
    empty_room = [np.full((96, 128, 3), 90, np.uint8)] * 10
    data = write_video(tmp_path / "room.mp4", empty_room, fps=5.0)
    upload = queued_upload(client_for(world, "patient_p"), world, data)
    analyse_upload(str(upload.pk))
    upload.refresh_from_db()
    assert (upload.status, upload.error, upload.frames_done) == ("failed", NOBODY, 10)
    assert (
        stored_files(upload_dir) == []
        and not ExerciseSession.objects.filter(source=ExerciseSession.Source.RECORDING).exists()
    )


def test_the_file_is_deleted_when_the_analysis_raises(
    world: World,
    upload_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A finisher that raises (a bug, the database away): the upload fails in plain words, no
    result is half made, the file is gone."""

    def broken(upload: VideoUpload, recording: Recording) -> None:
        ExerciseSession.objects.filter(pk=world.a.completed_session.pk).delete()  # rolled back
        raise RuntimeError("a bug in a finisher")

    monkeypatch.setitem(ANALYSERS, VideoUpload.Purpose.SESSION, Analyser(finish=broken))
    first_frames = [frame for _, frame in read_frames(SQUATS, 5.0)][:10]
    upload = queued_upload(
        client_for(world, "patient_p"), world, write_video(tmp_path / "s.mp4", first_frames, 5.0)
    )
    with caplog.at_level(logging.ERROR):
        analyse_upload(str(upload.pk))
    upload.refresh_from_db()
    assert (upload.status, upload.error) == (VideoUpload.Status.FAILED, UNEXPECTED)
    assert ExerciseSession.objects.filter(pk=world.a.completed_session.pk).exists()
    assert stored_files(upload_dir) == []
    assert f"upload {upload.pk}: the analysis failed" in caplog.text
    assert "a bug in a finisher" in caplog.text


# --- Leftovers of a crashed worker ---------------------------------------------------------------
def test_files_and_uploads_left_by_a_crashed_worker_are_swept(
    world: World, upload_dir: Path, settings: Any, eager_celery: None
) -> None:
    client = client_for(world, "patient_p")
    crashed = queued_upload(client, world, SQUATS.read_bytes())
    VideoUpload.objects.filter(pk=crashed.pk).update(status=VideoUpload.Status.ANALYSING)
    fresh = queued_upload(client, world, SQUATS.read_bytes())
    stray = upload_dir / ("ab" * 16 + ".video")  # written before its row, then the crash
    stray.write_bytes(b"\0\0\0\x18ftypmp42")
    other = upload_dir / "README.txt"  # not ours: never touched
    other.write_text("hello")
    long_ago = time.time() - settings.UPLOAD_ORPHAN_AGE_S - 60
    for path in (upload_dir / crashed.stored_name, stray, other):
        os.utime(path, (long_ago, long_ago))
    VideoUpload.objects.filter(pk=crashed.pk).update(
        created_at=timezone.now() - datetime.timedelta(seconds=settings.UPLOAD_ORPHAN_AGE_S + 60)
    )

    assert sweep_uploads.delay().get() == 2  # the beat's task
    crashed.refresh_from_db()
    assert (crashed.status, crashed.error, crashed.stored_name) == ("failed", INTERRUPTED, "")
    assert stored_files(upload_dir) == sorted([fresh.stored_name, "README.txt"])
    fresh.refresh_from_db()
    assert fresh.status == VideoUpload.Status.QUEUED


def test_an_analysis_sweeps_first(world: World, upload_dir: Path, settings: Any) -> None:
    upload_dir.mkdir(mode=0o700)
    stray = upload_dir / ("cd" * 16 + ".video")
    stray.write_bytes(b"\0\0\0\x18ftypmp42")
    long_ago = time.time() - settings.UPLOAD_ORPHAN_AGE_S - 60
    os.utime(stray, (long_ago, long_ago))
    analyse_upload("00000000-0000-4000-8000-000000000000")  # unknown: returns after sweeping
    assert stored_files(upload_dir) == []


# --- Who may upload, and see what ---------------------------------------------------------------
@pytest.fixture
def p_upload(world: World) -> VideoUpload:
    return VideoUpload.objects.create(
        patient=world.p,
        exercise=squat_line(world).exercise,
        side="right",
        prescription=squat_line(world),
        uploaded_by=world.p.user,
        frames_total=65,
    )


ROUTES = {
    "upload_new": (lambda w, u: {}, {"patient_p", "patient_q"}),
    "upload_for_patient": (lambda w, u: {"patient_id": w.p.pk}, {"therapist_a"}),
    "upload_detail": (lambda w, u: {"upload_id": u.pk}, {"therapist_a", "patient_p"}),
    "upload_status": (lambda w, u: {"upload_id": u.pk}, {"therapist_a", "patient_p"}),
}


@pytest.mark.parametrize("actor", CAST)
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_upload_pages_answer_only_their_owner(
    world: World, p_upload: VideoUpload, name: str, actor: str
) -> None:
    kwargs, allowed = ROUTES[name]
    response = client_for(world, actor).get(reverse(name, kwargs=kwargs(world, p_upload)))
    if actor == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == (200 if actor in allowed else 404)


@pytest.mark.parametrize("actor", ["therapist_b", "patient_p", "patient_q"])
def test_an_upload_for_someone_elses_patient_is_refused_before_a_byte_is_kept(
    world: World, upload_dir: Path, actor: str
) -> None:
    squat = Exercise.objects.get(slug="squat", owner=None)
    response = client_for(world, actor).post(
        reverse("upload_for_patient", args=[world.p.pk]),
        {"exercise": f"exercise:{squat.pk}", "side": "both", "video": video_file(b"\0" * 64)},
    )
    assert response.status_code == 404
    assert not VideoUpload.objects.exists() and stored_files(upload_dir) == []


def test_a_patient_uploads_only_for_exercises_on_their_own_plan(
    world: World, upload_dir: Path
) -> None:
    q_line = world.b.protocol.prescriptions.order_by("position")[1]
    response = client_for(world, "patient_p").post(
        reverse("upload_new"), {"prescription": q_line.pk, "video": video_file(b"\0" * 64)}
    )
    assert "Select a valid choice" in response.content.decode()
    assert not VideoUpload.objects.exists() and stored_files(upload_dir) == []


def test_a_library_exercise_needs_its_side(world: World, upload_dir: Path) -> None:
    squat = Exercise.objects.get(slug="squat", owner=None)
    response = client_for(world, "therapist_a").post(
        reverse("upload_for_patient", args=[world.p.pk]),
        {"exercise": f"exercise:{squat.pk}", "side": "", "video": video_file(SQUATS.read_bytes())},
    )
    assert "Choose the side for an exercise from the library." in response.content.decode()
    assert not VideoUpload.objects.exists() and stored_files(upload_dir) == []


def test_uploads_are_rate_limited_per_user(world: World, settings: Any) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": {"limit": 1, "per_s": 3600}}
    client = client_for(world, "patient_p")
    assert client.post(reverse("upload_new"), {}).status_code == 200  # the form, with errors
    assert client.post(reverse("upload_new"), {}).status_code == 429
    assert client.get(reverse("upload_new")).status_code == 200  # only sending counts


def test_the_status_says_how_far_the_analysis_is(world: World, p_upload: VideoUpload) -> None:
    VideoUpload.objects.filter(pk=p_upload.pk).update(
        status=VideoUpload.Status.ANALYSING, frames_done=13
    )
    client = client_for(world, "patient_p")
    assert wait_for_status(client, p_upload) == {
        "status": "analysing",
        "label": "Analysing",
        "finished": False,
        "frames_done": 13,
        "frames_total": 65,
        "percent": 20,
        "error": "",
        "session_url": None,
    }
    page = client.get(reverse("upload_detail", args=[p_upload.pk])).content.decode()
    assert 'max="65" value="13"' in page and "frame 13 of 65" in page


def test_the_admin_shows_uploads_read_only(world: World, p_upload: VideoUpload) -> None:
    staff = get_user_model().objects.create_superuser(
        username="root@example.org", email="root@example.org", password="x"
    )
    VideoUpload.objects.filter(pk=p_upload.pk).update(landmarks=b"\0" * 1234)
    client = Client()
    client.force_login(staff)
    listing = client.get(reverse("admin:exercise_sessions_videoupload_changelist"))
    assert listing.status_code == 200 and "Wall squat a" in listing.content.decode()
    page = client.get(reverse("admin:exercise_sessions_videoupload_change", args=[p_upload.pk]))
    assert (
        "1,234 bytes (npz)" in page.content.decode()
        and 'type="submit"' not in (page.content.decode().split('id="content"')[1])
    )
    assert client.get(reverse("admin:exercise_sessions_videoupload_add")).status_code == 403
    delete = reverse("admin:exercise_sessions_videoupload_delete", args=[p_upload.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert VideoUpload.objects.filter(pk=p_upload.pk).exists()
