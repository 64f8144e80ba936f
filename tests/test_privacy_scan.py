"""The privacy scan can fail: planted images and videos are found. And after an uploaded recording
is analysed, or fails, it finds nothing."""

import base64
import logging
import os
import struct
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from analysis.exports import tracks_from_npz, tracks_to_npz
from analysis.kinematics import PoseSeries
from analysis.people import PersonTrack
from patients.models import Patient
from sessions.models import VideoUpload
from sessions.tasks import analyse_upload
from tests.conftest import World, client_for
from tests.privacy import (
    CHECKOUT,
    database_findings,
    file_findings,
    image_traces,
    redis_findings,
    server_folders,
    text_findings,
    upload_findings,
)

JPEG = (Path(__file__).parent / "fixtures" / "pose.jpg").read_bytes()


def test_a_jpeg_in_base64_in_any_column_is_found(world: World) -> None:
    assert database_findings() == []
    Patient.objects.filter(pk=world.p.pk).update(notes=base64.b64encode(JPEG).decode())
    assert database_findings() == ["database table patients_patient: ['base64 JPEG']"]


def test_a_new_file_with_an_image_is_found_and_an_old_one_is_not(tmp_path: Path) -> None:
    old = tmp_path / "old.bin"
    old.write_bytes(JPEG)
    since = time.time() + 1
    assert file_findings([tmp_path], since=since) == []
    new = tmp_path / "frame.bin"
    new.write_bytes(b"header" + JPEG[:2000])
    os.utime(new, (since + 1, since + 1))
    assert file_findings([tmp_path], since=since) == [f"file {new}: ['JPEG']"]
    assert file_findings([tmp_path], since=since, skip=[tmp_path / "."]) == [
        f"file {new}: ['JPEG']"
    ]  # only folders below the searched one are skipped
    screenshots = tmp_path / "shots"
    screenshots.mkdir()
    (screenshots / "page.png").write_bytes(JPEG)
    os.utime(screenshots / "page.png", (since + 1, since + 1))
    assert len(file_findings([tmp_path], since=since)) == 2
    assert len(file_findings([tmp_path], since=since, skip=[screenshots])) == 1


def test_an_image_in_a_log_line_is_found() -> None:
    line = f"frame: data:image/jpeg;base64,{base64.b64encode(JPEG[:30]).decode()}"
    assert text_findings("log", [line, "rep 3 recorded"]) == ["log: ['base64 JPEG', 'data URL']"]


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis only")
def test_an_image_in_any_redis_key_is_found() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.rpush("privacy-scan-test", b"x", JPEG)
    try:
        assert "redis key b'privacy-scan-test' (list): ['JPEG']" in redis_findings(
            settings.REDIS_URL
        )
    finally:
        client.delete("privacy-scan-test")


# --- Uploaded recordings -------------------------------------------------------------------------
MP4 = (Path(__file__).parent / "fixtures" / "pose_squats.mp4").read_bytes()
WEBM_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87\x81\x04"
AVI_HEAD = b"RIFF\x40\xe2\x01\x00AVI LIST\x00\x00\x00\x00hdrlavih"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (MP4[:5000], "MP4/QuickTime"),
        (b"header" + WEBM_HEAD, "WebM/Matroska"),
        (AVI_HEAD, "AVI"),
        (base64.b64encode(MP4[:300]), "base64 MP4/QuickTime"),
        (base64.b64encode(WEBM_HEAD), "base64 WebM/Matroska"),
        (base64.b64encode(AVI_HEAD), "base64 AVI"),
    ],
)
def test_a_video_in_any_column_is_found(world: World, data: bytes, kind: str) -> None:
    VideoUpload.objects.create(
        patient=world.p, exercise=world.a.custom_exercise, side="right", landmarks=data
    )
    assert database_findings() == [f"database table exercise_sessions_videoupload: ['{kind}']"]


def test_kept_landmarks_are_numbers_and_an_image_beside_them_is_found(world: World) -> None:
    """About 1.5 MB of landmarks (a minute at 30 frames/s): its compressed bytes hold JPEG's
    3-byte signature by chance."""
    poses = PoseSeries.empty_frames(np.arange(2000) / 30)
    noise = np.random.default_rng(9)
    poses = replace(
        poses,
        pixels=noise.uniform(0, 640, poses.pixels.shape),
        world=noise.normal(0, 0.5, poses.world.shape),
        visibility=noise.uniform(0, 1, poses.visibility.shape),
    )
    archive = tracks_to_npz([PersonTrack(1, poses)], image_size=(640, 480), fps=30.0)
    assert "JPEG" in image_traces(archive)  # by chance: not an image
    upload = VideoUpload.objects.create(
        patient=world.p, exercise=world.a.custom_exercise, side="right", landmarks=archive
    )
    assert database_findings() == []
    for hidden in (archive + JPEG, _slipped_in(archive, JPEG)):
        assert tracks_from_npz(hidden)  # still loads as landmarks
        VideoUpload.objects.filter(pk=upload.pk).update(landmarks=hidden)
        assert database_findings() == ["database table exercise_sessions_videoupload: ['JPEG']"]


def _slipped_in(archive: bytes, data: bytes) -> bytes:
    """`data` between the archive's members and its central directory, which then points past
    it: zip readers follow the directory and never notice."""
    end = archive.rindex(b"PK\x05\x06")
    [offset] = struct.unpack("<L", archive[end + 16 : end + 20])  # the directory's start
    moved = archive[:offset] + data + archive[offset:end]
    new_offset = struct.pack("<L", offset + len(data))
    return moved + archive[end : end + 16] + new_offset + archive[end + 20 :]


def test_anything_left_in_the_upload_folder_is_found(settings: Any, tmp_path: Path) -> None:
    settings.UPLOAD_DIR = tmp_path / "uploads"
    assert upload_findings() == []
    settings.UPLOAD_DIR.mkdir()
    (settings.UPLOAD_DIR / "0123.video").write_bytes(b"not even a video")
    assert upload_findings() == ["upload folder: 0123.video left behind"]
    assert Path(settings.UPLOAD_DIR) in server_folders()


def test_nothing_of_an_uploaded_recording_is_left_after_its_analysis_or_its_failure(
    world: World,
    settings: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    eager_celery: None,
) -> None:
    settings.UPLOAD_DIR = tmp_path / "uploads"
    # The server's temporary files (a request body spooled to disk) go to a folder of this test's
    # own: the machine's /tmp holds other processes' files meanwhile.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    started = time.time()
    caplog.set_level(logging.DEBUG)
    client = client_for(world, "patient_p")
    line = world.a.protocol.prescriptions.order_by("position")[1]  # the (wall) squat
    for data in (MP4, MP4[:200] + b"\0" * 5000):  # a real clip, and one that decodes nothing
        upload_file = SimpleUploadedFile("clip.mp4", data, content_type="video/mp4")
        client.post(reverse("upload_new"), {"prescription": line.pk, "video": upload_file})
    [upload] = VideoUpload.objects.all()  # the broken one was refused on the form
    broken = VideoUpload.objects.create(  # and one that passed the form, then failed
        patient=world.p, exercise=line.exercise, side="right", stored_name="ab" * 16 + ".video"
    )
    (Path(settings.UPLOAD_DIR) / broken.stored_name).write_bytes(MP4[: len(MP4) // 2])
    analyse_upload(str(upload.pk))
    analyse_upload(str(broken.pk))

    assert VideoUpload.objects.get(pk=upload.pk).session is not None
    assert VideoUpload.objects.get(pk=broken.pk).status == VideoUpload.Status.FAILED
    findings = database_findings() + upload_findings()
    findings += file_findings(server_folders(), since=started, skip=[CHECKOUT])
    findings += text_findings("log", caplog.messages)
    if settings.REDIS_URL:
        findings += redis_findings(settings.REDIS_URL)
    assert findings == []
