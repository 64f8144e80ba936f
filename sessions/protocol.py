"""The live session's WebSocket protocol, in one place.

Status: the message parsing and the per-connection guard below are implemented and tested; the
consumer that serves the endpoint (with the pose workers) is the next step of the live-session
work and does not exist yet.

Endpoint: ``/ws/sessions/<session uuid>/live/``. Only the logged-in patient who owns the session
(Django session cookie) may connect, from an allowed origin; anyone else is refused before a
frame is read.

Client -> server
----------------
*Binary* message: one camera frame = a 16-byte header followed by the image.

    offset  size  field
    0       2     magic b"RF"
    2       1     version (1)
    3       1     reserved (0)
    4       4     sequence number, unsigned big-endian, strictly increasing per connection
    8       8     capture time in milliseconds (float64 big-endian, the page's clock)
    16      ...   a JPEG (or PNG) of at most 640x480 from the page; the guard accepts at most
                  1920x1080 and MAX_MESSAGE_BYTES in all

*Text* message: JSON with a ``type``: ``{"type": "end"}`` finishes the session.

Server -> client (always text, JSON with a ``type``)
----------------------------------------------------
``pose``      per processed frame: ``seq``, ``landmarks`` ([x, y, visibility] * 33, x and y in
              [0, 1] of the frame) or null, and the tracker's state (stage, angle, band, set, reps,
              hold, countdown, rest, placement message), plus ``dropped`` (frames replaced before
              they were processed: the page lowers its frame rate when this grows)
``rep``       a counted repetition (set, index, ROM, ...); ``partial`` a partial one
``set``       a set finished (``stage`` "resting" or "done")
``cue``       one short text for the patient (the page may speak it)
``error``     ``code`` and ``message`` about the last message; the connection stays usable

Close codes: 4401 not allowed (anonymous, not the owner, session not in progress), 4408 too many
bad messages in a row or a flood beyond the rate limit, 4409 session ended elsewhere.
"""

import json
import math
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from analysis.pose.frames import MAX_FRAME_BYTES

FRAME_HEADER = struct.Struct(">2sBxId")
MAGIC = b"RF"
VERSION = 1
MAX_MESSAGE_BYTES = FRAME_HEADER.size + MAX_FRAME_BYTES
MAX_TEXT_BYTES = 4096

CLOSE_NOT_ALLOWED = 4401
CLOSE_ABUSE = 4408
CLOSE_ENDED = 4409


class ProtocolError(StrEnum):
    """Why a message was refused; the value is the ``code`` of the error message sent back."""

    TOO_LARGE = "too_large"
    BAD_HEADER = "bad_header"
    SEQUENCE = "sequence"
    RATE = "rate"
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"


@dataclass(frozen=True)
class Frame:
    sequence: int
    capture_ms: float
    image: bytes


def parse_frame(message: bytes) -> Frame | ProtocolError:
    """The header checked, the image bytes left for the frame guard (analysis.pose.frames)."""
    if len(message) > MAX_MESSAGE_BYTES:
        return ProtocolError.TOO_LARGE
    if len(message) < FRAME_HEADER.size:
        return ProtocolError.BAD_HEADER
    magic, version, sequence, capture_ms = FRAME_HEADER.unpack_from(message)
    if magic != MAGIC or version != VERSION or not math.isfinite(capture_ms):
        return ProtocolError.BAD_HEADER
    return Frame(sequence, capture_ms, message[FRAME_HEADER.size :])


def encode_frame(sequence: int, capture_ms: float, image: bytes) -> bytes:
    return FRAME_HEADER.pack(MAGIC, VERSION, sequence, capture_ms) + image


def parse_control(text: str) -> dict[str, Any] | ProtocolError:
    if len(text) > MAX_TEXT_BYTES:
        return ProtocolError.TOO_LARGE
    try:
        message = json.loads(text)
    except ValueError:
        return ProtocolError.BAD_JSON
    if not isinstance(message, dict) or message.get("type") not in CONTROL_TYPES:
        return ProtocolError.UNKNOWN_TYPE
    return message


CONTROL_TYPES = frozenset({"end"})


class StreamGuard:
    """Per-connection checks on frames: strictly increasing sequence numbers and a token bucket
    (a steady rate with a small burst), and a count of consecutive refusals that ends in a close."""

    def __init__(self, *, rate_per_s: float = 30.0, burst: int = 10, max_strikes: int = 20):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_strikes = max_strikes
        self._tokens = float(burst)
        self._refilled_at: float | None = None
        self._last_sequence = -1
        self.strikes = 0

    def admit(self, frame: Frame, now_s: float) -> ProtocolError | None:
        if frame.sequence <= self._last_sequence:
            return self.refuse(ProtocolError.SEQUENCE)
        if not self._take_token(now_s):
            return self.refuse(ProtocolError.RATE)
        self._last_sequence = frame.sequence
        self.strikes = 0
        return None

    def refuse(self, error: ProtocolError) -> ProtocolError:
        self.strikes += 1
        return error

    @property
    def abusive(self) -> bool:
        return self.strikes >= self.max_strikes

    def _take_token(self, now_s: float) -> bool:
        if self._refilled_at is not None:
            elapsed = max(0.0, now_s - self._refilled_at)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)
        self._refilled_at = now_s
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
