"""Uploaded recordings, from the form to a session: the file is on disk only in between.

    the upload form (views)     VideoUploadHandler streams the file to UPLOAD_DIR under a random
                                name, counting bytes (over UPLOAD_MAX_BYTES it stops mid-stream);
                                probe_video checks its magic bytes, that OpenCV decodes its first
                                frame, its frame size and its duration: most errors show at once
    upload_create               the VideoUpload row (status QUEUED); after commit, upload_dispatch
    tasks.analyse_upload        upload_analyse: claims the upload, decodes every frame (progress,
                                limits, a file cut short), follows the person, deletes the file
                                (also in a `finally`, whatever happened), keeps the landmarks and
                                hands the tracks to the ANALYSERS entry of the upload's purpose
    tasks.sweep_uploads         uploads_sweep: files and uploads left behind by a crashed worker

The client's file name is never stored or logged: the file's name is random and server-side.
"""

import datetime
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import cv2
import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.db import OperationalError, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from analysis.exercises import Laterality, sides_in_turn
from analysis.exports import tracks_to_npz
from analysis.people import PersonTrack
from analysis.repetitions import RepetitionMetrics
from analysis.video import count_repetitions, read_frames, stated_fps, track_poses
from patients.models import Exercise, Patient, Prescription
from patients.selectors import User, get_or_404, visible_to
from sessions.groups import group_from_recording, people_in_recording
from sessions.models import ExerciseSession, VideoUpload
from sessions.recordings import NOBODY, Analyser, Frames, Recording, UploadRefused
from sessions.references import reference_from_recording, target_deg
from sessions.selectors import live_plan
from sessions.services import rep_record, session_complete

logger = logging.getLogger(__name__)

VIDEO_FIELD = "video"  # the form field that carries the file
ACCEPTED = "MP4, MOV, WebM, MKV or AVI"


# --- Limits and their messages -------------------------------------------------------------------
def _duration_words(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def size_words(size_bytes: int) -> str:
    return f"{size_bytes / (1024 * 1024):.0f} MB"


def too_large() -> str:
    return (
        f"The file is larger than {size_words(settings.UPLOAD_MAX_BYTES)}. Trim the recording "
        "to the exercise, or record at a lower resolution."
    )


def too_long(duration_s: float) -> str:
    return (
        f"The video is {_duration_words(duration_s)} long; at most "
        f"{_duration_words(settings.UPLOAD_MAX_DURATION_S)} can be analysed. Trim it to the "
        "exercise, or upload each set on its own."
    )


def frames_too_big(width: int, height: int) -> str:
    return (
        f"The video's frames are {width}×{height} pixels; at most "
        f"{settings.UPLOAD_MAX_SIDE_PX} pixels on the longer side can be analysed. Record at "
        "1080p or 4K."
    )


EMPTY = "The file is empty. Choose the recording again."
UNREADABLE = (
    "The video could not be read: the file is incomplete (cut off while copying?) or damaged. "
    "Upload the original recording."
)
GONE = "The recording was no longer on the server (it waited too long). Upload it again."
INTERRUPTED = "The analysis was interrupted (the server stopped). Upload the recording again."
TOO_SLOW = "The analysis took too long. Upload a shorter recording of the exercise."
UNEXPECTED = (
    "The analysis failed unexpectedly. Upload the recording again; if it fails again, tell your "
    "therapist."
)


# --- Storage: UPLOAD_DIR, random names, owner-only ------------------------------------------------
# Only names of this form are ever read or deleted in UPLOAD_DIR, whatever else lies there.
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.video$")


def upload_dir() -> Path:
    """UPLOAD_DIR, created readable by this user only (a recording shows the patient)."""
    folder = Path(settings.UPLOAD_DIR)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def stored_path(stored_name: str) -> Path:
    if not STORED_NAME.match(stored_name):
        raise ValueError("not a stored upload's name")
    return upload_dir() / stored_name


def stored_delete(stored_name: str) -> bool:
    """Delete a stored file; whether it was there."""
    try:
        stored_path(stored_name).unlink()
    except FileNotFoundError:
        return False
    return True


class StoredVideo(UploadedFile):
    """The file of an upload as VideoUploadHandler wrote it: its random name and path. Deleted
    when the request ends unless an upload row took it over (`keep`)."""

    def __init__(self, path: Path, size: int) -> None:
        super().__init__(file=path.open("rb"), name=path.name, size=size)
        self.path = path
        self.kept = False

    @property
    def stored_name(self) -> str:
        return self.path.name

    def keep(self) -> None:
        self.kept = True

    def discard(self) -> None:
        self.close()
        if not self.kept:
            self.path.unlink(missing_ok=True)


class VideoUploadHandler(FileUploadHandler):
    """Streams the form's video to UPLOAD_DIR chunk by chunk, never whole in memory, and stops at
    UPLOAD_MAX_BYTES (`refusal` then says why; the form shows it). Other file fields are skipped.
    The view calls `discard_unless_kept` when the request is over, whatever happened."""

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.refusal = ""
        self._path: Path | None = None
        self._fd: int | None = None
        self._written = 0
        self._done: list[StoredVideo] = []

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],  # noqa: N803  # Django's name
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        # The multipart overhead around the file is small: a body far over the limit holds a
        # file over it, refused before a byte is written.
        if content_length > settings.UPLOAD_MAX_BYTES + 1024 * 1024:
            self.refusal = too_large()

    def new_file(self, field_name: str, *args: Any, **kwargs: Any) -> None:
        if field_name != VIDEO_FIELD or self.refusal or self._done or self._path is not None:
            raise SkipFile
        self._path = upload_dir() / f"{secrets.token_hex(16)}.video"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        self._fd = os.open(self._path, flags, 0o600)
        self._written = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self._fd is None:
            raise SkipFile
        if self._written + len(raw_data) > settings.UPLOAD_MAX_BYTES:
            self.refusal = too_large()
            self._abandon()
            raise SkipFile
        os.write(self._fd, raw_data)
        self._written += len(raw_data)

    def file_complete(self, file_size: int) -> StoredVideo | None:
        if self._path is None or self._fd is None:
            return None
        os.close(self._fd)
        video = StoredVideo(self._path, self._written)
        self._fd, self._path = None, None
        self._done.append(video)
        return video

    def upload_interrupted(self) -> None:
        self._abandon()

    def discard_unless_kept(self) -> None:
        self._abandon()
        for video in self._done:
            video.discard()

    def _abandon(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        if self._path is not None:
            self._path.unlink(missing_ok=True)
        self._fd, self._path = None, None


# --- Probing: the checks made before anything is queued ------------------------------------------
@dataclass(frozen=True)
class VideoProbe:
    fps: float
    frames: int  # as the container states it; 0 when it does not
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


# Containers by their first bytes: MP4/QuickTime (an `ftyp` box), Matroska/WebM (EBML), AVI.
CONTAINERS: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (re.compile(rb"^....ftyp", re.DOTALL), "MP4/QuickTime"),
    (re.compile(rb"^\x1a\x45\xdf\xa3"), "WebM/Matroska"),
    (re.compile(rb"^RIFF....AVI ", re.DOTALL), "AVI"),
)
# What a file that is not a video often is, to say so.
OTHER_FILES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
)


def container_of(head: bytes) -> str | None:
    return next((name for pattern, name in CONTAINERS if pattern.match(head)), None)


def not_a_video(head: bytes) -> str:
    kind = next((name for magic, name in OTHER_FILES if head.startswith(magic)), None)
    what = f"This file is {kind}, not a video." if kind else "This file is not a video."
    return f"{what} Choose an {ACCEPTED} recording."


def probe_video(path: Path) -> VideoProbe:
    """The recording's frame rate, frame count and size; UploadRefused when it is empty, not a
    video container, undecodable, too big in frame size or too long. The frame size is checked
    from the container before a frame is decoded (an 8K frame alone is 100 MB)."""
    with path.open("rb") as file:
        head = file.read(16)
    if not head:
        raise UploadRefused(EMPTY)
    if container_of(head) is None:
        raise UploadRefused(not_a_video(head))
    video = cv2.VideoCapture(str(path))
    try:
        if not video.isOpened():
            raise UploadRefused(UNREADABLE)
        width = int(video.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))
        _check_frame_size(width, height)
        ok, frame = video.read()
        if not ok or frame is None:
            raise UploadRefused(UNREADABLE)
        height, width = frame.shape[:2]
        _check_frame_size(width, height)
        fps = video.get(cv2.CAP_PROP_FPS)
        frames = max(int(video.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        video.release()
    probe = VideoProbe(
        fps=stated_fps(fps),
        frames=frames,
        width=width,
        height=height,
    )
    if probe.duration_s > settings.UPLOAD_MAX_DURATION_S:
        raise UploadRefused(too_long(probe.duration_s))
    return probe


def _check_frame_size(width: int, height: int) -> None:
    if max(width, height) > settings.UPLOAD_MAX_SIDE_PX:
        raise UploadRefused(frames_too_big(width, height))


# --- Creating and queueing -----------------------------------------------------------------------
def upload_create(
    *,
    patient: Patient,
    exercise: Exercise,
    side: str,
    prescription: Prescription | None,
    purpose: str,
    uploaded_by: Any,
    video: StoredVideo,
    probe: VideoProbe,
) -> VideoUpload:
    """The upload row, which takes the stored file over; its analysis is queued after commit."""
    upload = VideoUpload(
        patient=patient,
        exercise=exercise,
        side=side,
        prescription=prescription,
        purpose=purpose,
        uploaded_by=uploaded_by,
        stored_name=video.stored_name,
        frames_total=probe.frames,
    )
    upload.full_clean()
    with transaction.atomic():
        upload.save()
        video.keep()
        upload_dispatch(upload_id=upload.pk)
    return upload


# Without Redis (the embedded defaults) Celery runs tasks eagerly, inside the caller: the upload's
# request would wait minutes for its analysis, and its page could show no progress. There, the
# analysis runs in a thread of the web process instead, one at a time (each holds a pose model
# and a core); an upload waiting for its turn shows as waiting. A thread dies with its process:
# the file it left is removed by the sweep (uploads_sweep, at the start of the next analysis).
_LOCAL_ANALYSES = threading.BoundedSemaphore(1)


def upload_dispatch(*, upload_id: UUID) -> None:
    """Queue the analysis once the upload row is committed."""
    from sessions.tasks import analyse_upload  # sessions.tasks imports this module

    if analyse_upload.app.conf.task_always_eager:
        transaction.on_commit(lambda: _analyse_in_thread(str(upload_id)))
    else:
        analyse_upload.delay_on_commit(str(upload_id))


def _analyse_in_thread(upload_id: str) -> None:
    thread = threading.Thread(
        target=_analyse_locally, args=(upload_id,), name=f"upload-{upload_id}", daemon=True
    )
    thread.start()


def _analyse_locally(upload_id: str) -> None:
    try:
        with _LOCAL_ANALYSES:
            upload_analyse(upload_id=upload_id)
    finally:
        connections.close_all()  # this thread's own connections


# --- The analysis --------------------------------------------------------------------------------
def track_one_person(upload: VideoUpload, frames: Frames) -> list[PersonTrack]:
    """The person doing the upload's exercise (analysis.video.track_poses), as track 1."""
    poses, found = track_poses(frames, exercise=upload.exercise.definition())
    if not found:
        raise UploadRefused(NOBODY)
    return [PersonTrack(track_id=1, poses=poses)]


def upload_analyse(*, upload_id: str) -> None:
    """The task's work: analyse a queued upload once (a repeated task finds it claimed and
    returns). The file is deleted as soon as its frames are read, and again in the `finally`."""
    uploads_sweep()
    if not VideoUpload.objects.filter(pk=upload_id, status=VideoUpload.Status.QUEUED).update(
        status=VideoUpload.Status.ANALYSING
    ):
        return  # gone, or taken by another worker (a message delivered twice)
    upload = VideoUpload.objects.select_related("exercise", "prescription", "patient").get(
        pk=upload_id
    )
    try:
        _finish(upload, _recording(upload))
    except UploadRefused as refused:
        _mark_failed(upload, str(refused))
    except SoftTimeLimitExceeded:
        _mark_failed(upload, TOO_SLOW)
    except Exception:
        logger.exception("upload %s: the analysis failed", upload_id)
        _mark_failed(upload, UNEXPECTED)
    finally:
        _forget_file(upload)


# The database may refuse a transaction for a moment (SQLite while another connection writes, a
# PostgreSQL failover): minutes of analysis are worth a few tries of their last step.
FINISH_ATTEMPTS = 3


def _finish(upload: VideoUpload, recording: Recording) -> None:
    """The purpose's result and the upload marked done, in one transaction."""
    for attempt in range(1, FINISH_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                ANALYSERS[upload.purpose].finish(upload, recording)
                _mark_done(upload, recording)
            return
        except OperationalError:
            if attempt == FINISH_ATTEMPTS:
                raise
            time.sleep(attempt)


def _recording(upload: VideoUpload) -> Recording:
    try:
        path = stored_path(upload.stored_name)
        probe = probe_video(path)
    except (ValueError, FileNotFoundError):
        raise UploadRefused(GONE) from None
    track = ANALYSERS[upload.purpose].track or track_one_person
    tracks = track(upload, _checked_frames(upload, path, probe))
    _forget_file(upload)  # every frame is read: the file has served
    return Recording(tracks=tracks, fps=probe.fps, width=probe.width, height=probe.height)


# The page polls about once a second: the progress is written about as often, not per frame.
PROGRESS_EVERY_S = 0.5
# A container's frame count can be an estimate (from its duration) for some formats; a file cut
# short decodes far fewer frames than it states.
DECODED_SHARE_REQUIRED = 0.95


def _checked_frames(
    upload: VideoUpload, path: Path, probe: VideoProbe
) -> Iterator[tuple[float, np.ndarray]]:
    """The file's frames, with the limits the probe could not check (a container that does not
    state or misstates its length or size) and the progress written as they go."""
    limit = math.floor(settings.UPLOAD_MAX_DURATION_S * probe.fps) + 1
    done, told_at = 0, time.monotonic()
    for t_s, frame in read_frames(path, probe.fps):
        done += 1
        if done > limit:
            raise UploadRefused(too_long(done / probe.fps))
        height, width = frame.shape[:2]
        _check_frame_size(width, height)
        if time.monotonic() - told_at >= PROGRESS_EVERY_S:
            _tell_progress(upload, done)
            told_at = time.monotonic()
        yield t_s, frame
    _tell_progress(upload, done)
    if probe.frames > 2 and done < DECODED_SHARE_REQUIRED * probe.frames:
        raise UploadRefused(
            f"The recording stops after {_duration_words(done / probe.fps)} of the "
            f"{_duration_words(probe.duration_s)} its file announces: the file is incomplete "
            "(cut off while copying?). Upload the whole recording again."
        )


def _tell_progress(upload: VideoUpload, frames_done: int) -> None:
    """Progress is a hint for the page: a write the database refuses for a moment is skipped,
    the next one catches up."""
    try:
        VideoUpload.objects.filter(pk=upload.pk).update(frames_done=frames_done)
    except OperationalError:
        logger.debug("upload %s: progress not written (database busy)", upload.pk)


def _mark_done(upload: VideoUpload, recording: Recording) -> None:
    upload.status = VideoUpload.Status.DONE
    upload.finished_at = timezone.now()
    upload.frames_done = recording.frames
    upload.frames_total = max(upload.frames_total, recording.frames)
    upload.landmarks = tracks_to_npz(
        recording.tracks, image_size=(recording.width, recording.height), fps=recording.fps
    )
    upload.save(
        update_fields=[
            "status",
            "finished_at",
            "frames_done",
            "frames_total",
            "landmarks",
            "session",
            "reference",
            "result",
        ]
    )


def _mark_failed(upload: VideoUpload, message: str) -> None:
    limit = VideoUpload._meta.get_field("error").max_length or len(message)
    VideoUpload.objects.filter(pk=upload.pk).update(
        status=VideoUpload.Status.FAILED, error=message[:limit], finished_at=timezone.now()
    )


def _forget_file(upload: VideoUpload) -> bool:
    """Delete the upload's file and its name; whether there was a file."""
    if not upload.stored_name:
        return False
    deleted = stored_delete(upload.stored_name)
    VideoUpload.objects.filter(pk=upload.pk).update(stored_name="")
    upload.stored_name = ""
    return deleted


# --- Purpose SESSION: a recorded exercise session ------------------------------------------------
def session_from_recording(upload: VideoUpload, recording: Recording) -> None:
    """A completed session from the recording, as a live session would have counted it: the
    prescription's targets, the same plan (target angle, the patient's recent range), the
    repetitions numbered into sets of the prescribed size, then session_complete (summary and
    alerts)."""
    session = _recorded_session(upload)
    plan = live_plan(session=session)
    _side, reps, partials = count_repetitions(
        recording.tracks[0].poses,
        plan.exercise,
        side=session.side,
        target_deg=plan.target_deg,
        expected_rom_deg=plan.expected_rom_deg,
    )
    if upload.prescription is None:  # a library exercise: what was done is what was asked
        session.target_reps = max(1, math.ceil(len(reps) / session.sides_in_turn))
    session.partial_reps = len(partials)
    session.full_clean()
    session.save()
    for rep in numbered_in_sets(reps, per_set=session.reps_per_set):
        rep_record(session=session, data=rep)
    ended_at = session.started_at + datetime.timedelta(seconds=recording.duration_s)
    upload.session = session_complete(session=session, now=ended_at)


def _recorded_session(upload: VideoUpload) -> ExerciseSession:
    """The session of a recording, unsaved: started when the file was uploaded, with the targets
    session_start copies from a prescription (the reference movement's target when there is
    one); a library exercise without a prescription gets one set and its default target."""
    prescription, exercise = upload.prescription, upload.exercise
    return ExerciseSession(
        patient=upload.patient,
        prescription=prescription,
        exercise=exercise,
        side=upload.side,
        source=ExerciseSession.Source.RECORDING,
        started_at=upload.created_at,
        target_sets=prescription.sets if prescription else 1,
        target_reps=prescription.reps if prescription else 1,
        target_rom_deg=target_deg(upload.patient_id, exercise, prescription),
        sides_in_turn=len(sides_in_turn(Laterality(exercise.laterality), upload.side)),
    )


def numbered_in_sets(reps: Iterable[RepetitionMetrics], *, per_set: int) -> list[RepetitionMetrics]:
    """The repetitions in time order, `per_set` to a set (as the live page counts a set before
    its rest); those beyond the prescription go on into further sets."""
    ordered = sorted(reps, key=lambda rep: rep.start_s)
    return [
        replace(rep, set_number=i // per_set + 1, index=i % per_set + 1)
        for i, rep in enumerate(ordered)
    ]


# What each purpose does with its recording. REFERENCE (sessions/references.py) and GROUP
# (sessions/groups.py) join with one line each; the forms offer the purposes listed here.
ANALYSERS: dict[str, Analyser] = {
    VideoUpload.Purpose.SESSION: Analyser(finish=session_from_recording),
    VideoUpload.Purpose.REFERENCE: Analyser(finish=reference_from_recording),
    VideoUpload.Purpose.GROUP: Analyser(finish=group_from_recording, track=people_in_recording),
}


# --- Leftovers of a crashed worker ---------------------------------------------------------------
def uploads_sweep(*, now: datetime.datetime | None = None) -> int:
    """Fail the uploads still waiting or analysing after UPLOAD_ORPHAN_AGE_S (their worker died)
    and delete every stored file older than that; the number of files deleted. The age must
    exceed the longest analysis (UPLOAD_ANALYSIS_TIME_LIMIT_S)."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.UPLOAD_ORPHAN_AGE_S)
    stale = VideoUpload.objects.filter(
        status__in=[VideoUpload.Status.QUEUED, VideoUpload.Status.ANALYSING],
        created_at__lt=cutoff,
    )
    deleted = 0
    for upload in stale.only("pk", "stored_name"):
        _mark_failed(upload, INTERRUPTED)
        deleted += _forget_file(upload)
    for path in upload_dir().iterdir():
        if STORED_NAME.match(path.name) and path.stat().st_mtime < cutoff.timestamp():
            path.unlink(missing_ok=True)
            deleted += 1
    if deleted:
        logger.warning("deleted %d upload file(s) left behind by an interrupted analysis", deleted)
    return deleted


# --- Reads ---------------------------------------------------------------------------------------
def upload_get_for_user(*, user: User, upload_id: UUID) -> VideoUpload:
    queryset = VideoUpload.objects.defer("landmarks").select_related(
        "exercise", "patient__user", "session"
    )
    return get_or_404(visible_to(queryset, user), upload_id)


def uploads_of_patient(*, patient: Patient) -> QuerySet[VideoUpload]:
    return (
        VideoUpload.objects.filter(patient=patient)
        .defer("landmarks")
        .select_related("exercise")
        .order_by("-created_at")
    )


def upload_landmarks(*, upload: VideoUpload) -> bytes | None:
    """The stored landmarks of an upload (left out of the reads above: they run to megabytes)."""
    data = VideoUpload.objects.filter(pk=upload.pk).values_list("landmarks", flat=True).first()
    return None if data is None else bytes(data)
