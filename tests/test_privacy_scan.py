"""The privacy scan of tests/e2e/test_live_session.py can fail: planted images are found."""

import base64
import os
import time
from pathlib import Path

import pytest
from django.conf import settings

from patients.models import Patient
from tests.conftest import World
from tests.privacy import database_findings, file_findings, redis_findings, text_findings

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
