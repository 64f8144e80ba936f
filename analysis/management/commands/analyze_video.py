"""`python manage.py analyze_video PATH --exercise SLUG [--side auto|left|right|both] [--json]`

A contract other tools depend on: with --json, stdout holds exactly one JSON object (see
analysis.video.VideoAnalysis.as_json). Bad input (unknown exercise, unreadable file, nobody in
the video) is one line on stderr and exit code 2.
"""

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.exercises import BY_SLUG
from analysis.video import VideoAnalysis, VideoAnalysisError, analyze_video

BAD_INPUT = 2
BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Count and measure the repetitions of an exercise in a video file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--exercise", required=True, help="exercise slug, e.g. squat")
        parser.add_argument("--side", choices=["auto", "left", "right", "both"], default="auto")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        exercise = BY_SLUG.get(options["exercise"])
        if exercise is None:
            raise CommandError(
                f"unknown exercise {options['exercise']!r}; one of: {', '.join(sorted(BY_SLUG))}",
                returncode=BAD_INPUT,
            )
        as_json = options["json"]
        with _native_stderr_silenced() as stderr:
            progress = None if as_json else _ProgressBar(stderr)
            try:
                analysis = analyze_video(
                    options["path"], exercise, side=options["side"], progress=progress
                )
            except VideoAnalysisError as error:
                raise CommandError(str(error), returncode=BAD_INPUT) from error
            finally:
                if progress is not None:
                    progress.close()
        if as_json:
            self.stdout.write(json.dumps(analysis.as_json()))
        else:
            self.stdout.write(_table(analysis))


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
