"""`python manage.py analyze_video PATH --exercise SLUG [--side auto|left|right|both] [--json]
[--export coco|openpose|trc|mot --out PATH [--people patient|all]]`

A contract other tools depend on: with --json, stdout holds exactly one JSON object (see
analysis.video.VideoAnalysis.as_json; with --export it also has an "export" key). Bad input
(unknown exercise, unreadable file, nobody in the video, an export that cannot be written as
asked) is one line on stderr and exit code 2.

--export also writes the landmarks to --out (analysis.exports, docs/exports.md): the followed
patient's (the series the repetitions are counted on), or with --people all every tracked person's
(analysis.people.track_people). Pose runs once either way.
"""

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.exercises import BY_SLUG, ExerciseDefinition
from analysis.exports import FORMATS, ONE_PERSON_PER_FILE, ExportError, check_suffix, write_export
from analysis.people import PersonTrack, choose_patient, track_people
from analysis.video import (
    OnFrames,
    VideoAnalysis,
    VideoAnalysisError,
    analyze_video,
    count_repetitions,
    read_frames,
    track_poses,
    video_fps,
)

BAD_INPUT = 2
BAR_WIDTH = 30
# The track id the followed patient's landmarks carry in an export of the patient alone.
PATIENT_TRACK_ID = 0


@dataclass(frozen=True)
class _Export:
    fmt: str
    out: Path
    people: str  # "patient" or "all"


@dataclass(frozen=True)
class _Landmarks:
    """What an export needs besides the analysis."""

    tracks: list[PersonTrack]
    image_size: tuple[int, int]


class Command(BaseCommand):
    help = "Count and measure the repetitions of an exercise in a video file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--exercise", required=True, help="exercise slug, e.g. squat")
        parser.add_argument("--side", choices=["auto", "left", "right", "both"], default="auto")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
        parser.add_argument(
            "--export",
            metavar="FORMAT",
            help=f"also write the landmarks, in one of: {', '.join(FORMATS)} (needs --out)",
        )
        parser.add_argument(
            "--out", type=Path, help="the export's file: .json, .zip, .trc or .mot by format"
        )
        parser.add_argument(
            "--people",
            choices=["patient", "all"],
            default="patient",
            help="export the followed patient (default) or every tracked person",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        exercise = BY_SLUG.get(options["exercise"])
        if exercise is None:
            raise CommandError(
                f"unknown exercise {options['exercise']!r}; one of: {', '.join(sorted(BY_SLUG))}",
                returncode=BAD_INPUT,
            )
        out = options["out"]
        export = _export_request(
            options["export"], None if out is None else Path(out), options["people"]
        )
        as_json = options["json"]
        landmarks = None
        with _native_stderr_silenced() as stderr:
            progress = None if as_json else _ProgressBar(stderr)
            try:
                if export is None:
                    analysis = analyze_video(
                        options["path"], exercise, side=options["side"], progress=progress
                    )
                else:
                    analysis, landmarks = _analyze_with_landmarks(
                        options["path"],
                        exercise,
                        side=options["side"],
                        people=export.people,
                        progress=progress,
                    )
            except VideoAnalysisError as error:
                raise CommandError(str(error), returncode=BAD_INPUT) from error
            finally:
                if progress is not None:
                    progress.close()
        result = analysis.as_json()
        if export is not None and landmarks is not None:
            _write(export, landmarks, fps=analysis.fps_video, name=options["path"].stem)
            result["export"] = {
                "format": export.fmt,
                "path": str(export.out),
                "people": len(landmarks.tracks),
            }
        if as_json:
            self.stdout.write(json.dumps(result))
        else:
            table = _table(analysis)
            if export is not None and landmarks is not None:
                table += (
                    f"\n\nlandmarks of {len(landmarks.tracks)} "
                    f"{'person' if len(landmarks.tracks) == 1 else 'people'} "
                    f"written to {export.out} ({export.fmt})"
                )
            self.stdout.write(table)


def _export_request(fmt: str | None, out: Path | None, people: str) -> _Export | None:
    """The export asked for (None: none), checked before any frame is analysed."""
    if fmt is None and out is None:
        if people != "patient":
            raise CommandError(
                "--people is for exports: add --export and --out", returncode=BAD_INPUT
            )
        return None
    if fmt is None or out is None:
        given, missing = ("--export", "--out") if out is None else ("--out", "--export")
        raise CommandError(f"{given} needs {missing} too", returncode=BAD_INPUT)
    try:
        check_suffix(fmt, out.suffix)
    except ExportError as error:
        raise CommandError(str(error), returncode=BAD_INPUT) from error
    if people == "all" and fmt in ONE_PERSON_PER_FILE and out.suffix.lower() != ".zip":
        raise CommandError(
            f"--people all writes one {out.suffix} per person: give a .zip to --out",
            returncode=BAD_INPUT,
        )
    folder = out.parent
    if out.is_dir():
        problem = "it is a folder"
    elif not folder.is_dir():
        problem = f"no such folder: {folder}"
    elif not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        problem = "permission denied"
    else:
        return _Export(fmt=fmt, out=out, people=people)
    raise CommandError(f"cannot write {out}: {problem}", returncode=BAD_INPUT)


def _analyze_with_landmarks(
    path: Path,
    exercise: ExerciseDefinition,
    *,
    side: str,
    people: str,
    progress: OnFrames | None,
) -> tuple[VideoAnalysis, _Landmarks]:
    """analysis.video.analyze_video, keeping the landmarks: the patient's series (one pose
    engine), or every person's (track_people) with the repetitions counted on the patient's track
    (choose_patient: the one exercising). The frames go through pose once."""
    fps = video_fps(path)  # a clear VideoAnalysisError for a missing or unreadable file
    sizes: list[tuple[int, int]] = []
    frames = _noting_size(read_frames(path, fps), sizes)
    started = time.perf_counter()
    if people == "all":
        try:
            tracks = track_people(frames, progress=progress, total=_frame_count(path))
        except ValueError as error:  # frames of different sizes
            raise VideoAnalysisError(f"cannot track people in {path.name}: {error}") from error
        patient = choose_patient(tracks, exercise)
        poses = patient.poses if patient is not None else None
        found = patient.frames_seen if patient is not None else 0
    else:
        poses, found = track_poses(
            frames, progress=progress, total=_frame_count(path), exercise=exercise
        )
        tracks = [PersonTrack(track_id=PATIENT_TRACK_ID, poses=poses)]
    elapsed = time.perf_counter() - started
    if poses is None or found == 0:
        raise VideoAnalysisError(f"no person found in {path.name}")
    chosen, reps, partials = count_repetitions(poses, exercise, side=side)
    analysis = VideoAnalysis(
        exercise=exercise.slug,
        side=chosen,
        frames=len(poses),
        fps_video=fps,
        fps_processed=len(poses) / elapsed if elapsed > 0 else float("inf"),
        frames_with_pose=found,
        reps=reps,
        partial_reps=partials,
    )
    return analysis, _Landmarks(tracks=tracks, image_size=sizes[0])


def _noting_size(
    frames: Iterable[tuple[float, np.ndarray]], sizes: list[tuple[int, int]]
) -> Iterator[tuple[float, np.ndarray]]:
    """The frames, unchanged; the first one's (width, height) goes into `sizes`: the picture the
    landmarks' pixels refer to, as decoded."""
    for t_s, frame in frames:
        if not sizes:
            sizes.append((int(frame.shape[1]), int(frame.shape[0])))
        yield t_s, frame


def _frame_count(path: Path) -> int:
    """The frame count the container states, for the progress bar (0 if it states none)."""
    video = cv2.VideoCapture(str(path))
    try:
        return max(int(video.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        video.release()


def _write(export: _Export, landmarks: _Landmarks, *, fps: float, name: str) -> None:
    try:
        write_export(
            landmarks.tracks,
            export.fmt,
            export.out,
            image_size=landmarks.image_size,
            fps=fps,
            name=name,
        )
    except (OSError, ExportError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CommandError(f"cannot write {export.out}: {reason}", returncode=BAD_INPUT) from error


class _ProgressBar:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if done % 10 and done != total:
            return
        if total:
            filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {done}/{total} frames")
        else:
            self.stream.write(f"\r{done} frames")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[TextIO]:
    """MediaPipe's C++ code logs model loading straight to file descriptor 2. Point that at
    /dev/null while the video is analysed and give Python a copy of the real stderr, so the user
    sees only the progress bar and our own messages."""
    sys.stderr.flush()
    saved = os.dup(2)
    real_stderr = os.fdopen(os.dup(saved), "w")
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield real_stderr
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        real_stderr.close()


def _table(analysis: VideoAnalysis) -> str:
    lines = [
        f"{analysis.exercise}, {analysis.side} side: {len(analysis.reps)} repetitions, "
        f"{len(analysis.partial_reps)} partial",
        f"{analysis.frames} frames ({analysis.frames_with_pose} with a pose), "
        f"video {analysis.fps_video:.2f} fps, processed {analysis.fps_processed:.1f} fps",
        "",
        f"{'rep':>3} {'side':>5} {'start s':>8} {'end s':>7} {'min°':>6} {'max°':>6} "
        f"{'ROM°':>6} {'dur s':>6} {'peak °/s':>9} {'quality':>7}  form",
    ]
    for rep in analysis.reps:
        lines.append(
            f"{rep.index:>3} {rep.side:>5} {rep.start_s:>8.2f} {rep.end_s:>7.2f} "
            f"{rep.min_deg:>6.1f} {rep.max_deg:>6.1f} {rep.rom_deg:>6.1f} {rep.duration_s:>6.2f} "
            f"{rep.peak_velocity_dps:>9.1f} {rep.quality:>7}  {', '.join(rep.form_flags) or '-'}"
        )
    return "\n".join(lines)
