"""What the analysis of an uploaded recording (sessions.uploads) hands to the purpose it was made
for (a session, a reference movement, a group): the people followed in it, and how a purpose
refuses a recording it cannot use. Below both, so that each purpose's module and the upload
pipeline need not import each other."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from analysis.people import PersonTrack
from sessions.models import VideoUpload


class UploadRefused(Exception):
    """The recording cannot be analysed; the message tells the person why, in plain words."""


NOBODY = (
    "Nobody could be seen in the recording. Film the whole body, in good light, as the "
    "exercise's instructions say, and upload it again."
)


@dataclass(frozen=True)
class Recording:
    """What the analysis hands to a finisher: every person followed (one row per frame each),
    the frame rate and the frame size."""

    tracks: list[PersonTrack]
    fps: float
    width: int
    height: int

    @property
    def frames(self) -> int:
        return len(self.tracks[0].poses) if self.tracks else 0

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


Frames = Iterable[tuple[float, np.ndarray]]


@dataclass(frozen=True)
class Analyser:
    """What an upload's purpose does with the frames: `track` follows the people in them (the
    one exercising unless given), `finish` makes the result from the Recording and links it to
    the upload (upload.session, .reference or .result), inside the transaction that marks it
    done. UploadRefused from either fails the upload with its message."""

    finish: Callable[[VideoUpload, Recording], None]
    track: Callable[[VideoUpload, Frames], list[PersonTrack]] | None = None
