"""What a therapist's recording can be besides a session: the patient's reference movement (then
every repetition of theirs is scored against it), or several people measured apart and compared
in step; and the landmarks of any analysed recording, exported. Real video throughout."""

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.urls import reverse
from pycocotools.coco import COCO

from analysis.video import read_frames
from audit.models import AuditEvent
from sessions.models import ReferenceMovement, VideoUpload
from sessions.tasks import analyse_upload
from tests.conftest import World, client_for
from tests.sessions.test_uploads import SQUATS, squat_line, stored_files, video_file, write_video

LAB_CLIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "multiperson"
LAB_CLIP = LAB_CLIP / "pose2sim_multi_cam01.mp4"


def therapist_upload(world: World, data: bytes, purpose: str, **form: Any) -> VideoUpload:
    line = squat_line(world)
    response = client_for(world, "therapist_a").post(
        reverse("upload_for_patient", args=[world.p.pk]),
        {"exercise": f"line:{line.pk}", "purpose": purpose, **form, "video": video_file(data)},
    )
    assert response.status_code == 302, response.content.decode()
    upload = VideoUpload.objects.get(pk=response["Location"].split("/")[-2])
    analyse_upload(str(upload.pk))
    upload.refresh_from_db()
    return upload


def test_a_therapists_reference_scores_the_patients_repetitions_and_sets_their_target(
    world: World, upload_dir: Path, eager_celery: None
) -> None:
    reference_upload = therapist_upload(world, SQUATS.read_bytes(), "reference")
    assert reference_upload.status == VideoUpload.Status.DONE, reference_upload.error
    reference = reference_upload.reference
    assert reference is not None and reference.repetitions == 2
    assert reference.patient == world.p and reference.exercise == squat_line(world).exercise
    assert 60 <= reference.expected_rom_deg <= 120
    assert reference.template["demonstration"]["frames"]  # landmarks for the demonstration
    assert stored_files(upload_dir) == []
    page = client_for(world, "therapist_a").get(
        reverse("upload_detail", args=[reference_upload.pk])
    )
    assert b"reference movement" in page.content and b'class="reference-demo"' in page.content

    # The patient's own recording of the same movement: scored high, towards the new target.
    session_upload = therapist_upload(world, SQUATS.read_bytes(), "session")
    session = session_upload.session
    assert session is not None and session.target_rom_deg == pytest.approx(reference.target_deg)
    scores = list(session.repetitions.values_list("similarity", flat=True))
    assert len(scores) == 2 and all(score is not None and score >= 80 for score in scores)
    patient = client_for(world, "patient_p")
    detail = patient.get(reverse("session_detail", args=[session.pk])).content.decode()
    assert "Like the reference" in detail and "Like the therapist&#x27;s reference" in detail

    # The live page shows the movement before the camera starts and beside the picture.
    live = patient.get(reverse("session_live", args=[world.a.open_session.pk])).content.decode()
    assert live.count('class="reference-demo') == 2 and 'id="reference-demo-data"' in live


def test_a_reference_without_a_repetition_fails_with_a_way_forward(
    world: World, upload_dir: Path, eager_celery: None, tmp_path: Path
) -> None:
    still = [frame for _, frame in read_frames(SQUATS, 5.0)][:1] * 30
    data = write_video(tmp_path / "still.mp4", still, fps=5.0)
    upload = therapist_upload(world, data, "reference")
    assert upload.status == VideoUpload.Status.FAILED
    assert "no repetition was counted" in upload.error.lower()
    assert not ReferenceMovement.objects.exists() and stored_files(upload_dir) == []


@pytest.mark.parametrize("fmt", ["coco", "openpose", "trc", "mot"])
def test_an_analysed_recordings_landmarks_export_in_each_format_and_are_audited(
    world: World, upload_dir: Path, eager_celery: None, tmp_path: Path, fmt: str
) -> None:
    upload = therapist_upload(world, SQUATS.read_bytes(), "session")
    response = client_for(world, "patient_p").get(reverse("upload_export", args=[upload.pk, fmt]))
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.LANDMARKS_EXPORTED)
    assert event.sha256 == hashlib.sha256(response.content).hexdigest()
    if fmt == "coco":
        path = tmp_path / "coco.json"
        path.write_bytes(response.content)
        coco = COCO(str(path))
        assert len(coco.getAnnIds()) == 65 and len(coco.getImgIds()) == 65
    other = client_for(world, "patient_q").get(reverse("upload_export", args=[upload.pk, fmt]))
    assert other.status_code == 404
    unknown = client_for(world, "patient_p").get(reverse("upload_export", args=[upload.pk, "x"]))
    assert unknown.status_code == 404


@pytest.mark.skipif(not LAB_CLIP.is_file(), reason="needs ../shared/data/multiperson")
def test_several_people_are_measured_apart_and_compared_in_step(
    world: World, upload_dir: Path, eager_celery: None
) -> None:
    upload = therapist_upload(world, LAB_CLIP.read_bytes(), "group")
    assert upload.status == VideoUpload.Status.DONE, upload.error
    people = upload.result["people"]
    assert [person["track_id"] for person in people] == [1, 2, 3]
    reference = upload.result["reference"]
    assert reference.startswith("person:")
    assert {row["track_id"] for row in upload.result["in_step"]} == {1, 2, 3} - {
        int(reference.split(":")[1])
    }
    client = client_for(world, "therapist_a")
    page = client.get(reverse("upload_detail", args=[upload.pk])).content.decode()
    assert "Everyone in the recording" in page and "In step with the reference" in page
    assert page.count('class="chart"') >= 1
    other = client.get(reverse("upload_detail", args=[upload.pk]), {"reference": "person:1"})
    assert '<option value="person:1" selected>' in other.content.decode()
    scores = [row["score"] for row in upload.result["in_step"] if row["score"] is not None]
    assert all(0 <= score <= 100 for score in scores)
    assert np.isfinite(scores).all()
