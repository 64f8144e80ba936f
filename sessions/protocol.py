"""The live session's WebSocket protocol, in one place. Served by sessions.consumers.

Endpoint: ``/ws/sessions/<session uuid>/live/``. Only the logged-in patient who owns the session
(Django session cookie), from an allowed origin (the handshake is refused otherwise), while the
session is in progress; anyone else is closed with 4401 before a frame is read.

Client -> server
----------------
*Binary* message: one camera frame = a 16-byte header followed by the image.

    offset  size  field
    0       2     magic b"RF"
    2       1     version (1)
    3       1     reserved (0)
    4       4     sequence number, unsigned big-endian, strictly increasing per connection
    8       8     capture time in milliseconds (float64 big-endian, the page's clock): never
                  going back, and at most MAX_CAPTURE_SPAN_MS (a day) after the connection's first
    16      ...   a JPEG of at most 640x480 from the page; the guard accepts at most 1920x1080
                  and MAX_MESSAGE_BYTES in all

The page keeps at most two frames unanswered and about 15 frames/s; the server allows a steady
LIVE_MAX_FRAMES_PER_S with a burst of LIVE_FRAME_BURST. Only the latest frame waits for a pose
worker: a frame that arrives while another is waiting replaces it and counts as dropped.

*Text* message: JSON with a ``type``: ``{"type": "end"}`` finishes the session.

Server -> client (always text, JSON with a ``type``)
----------------------------------------------------
``ready``     once, after connecting: ``plan`` (sets, reps, target_deg, hold_s, rest_s, and
              ``turns``: the sides each set is done on in turn, ``reps`` each), the measured
              ``segment`` (three landmark indices) and ``segments`` per side, ``camera_view``,
              and ``progress`` (set, reps) where a reconnected session resumes
``pose``      per processed frame: ``seq``, ``landmarks`` ([x, y, visibility] * 33, x and y in
              [0, 1] of the frame, unmirrored) or null, ``stage`` (placing, countdown, counting,
              resting, done), ``set``, ``reps`` (in this set), ``angle`` (deg or null), ``band``
              (in, close, out or null), ``hold`` (s), ``countdown`` and ``rest`` (s or null),
              ``placement`` (what keeps the movement from being measured, or null), ``advice``
              (how to improve the set-up while counting goes on, or null), ``side`` (the side
              measured now: left, right, or both), ``identity`` (whether the person in view is
              the patient, analysis.pose.types.IdentityState: enrolling, while their first
              frames teach who they are; confirmed; uncertain, when someone else is in view and
              the patient cannot be told apart: no landmarks then, nothing is counted),
              ``paused`` (null, or once identity has been uncertain for 0.5 s,
              analysis.tracker.SOMEONE_ELSE_S, the text to show instead of ``placement`` until
              the patient is recognised again: "Someone else is in view — counting is paused
              until only you are in front of the camera"; a ``cue`` says it once),
              ``dropped`` (frames replaced before they were processed, since connecting: the
              page lowers its rate when it grows) and ``fps``, the most frames a second the
              page need send now (wanted_fps: fewer while nothing is counted)
``rep``       a counted repetition: set, index, rom, min, max (deg), duration, hold (s), form
              (labels of its form flags)
``partial``   a movement that did not count: set, peak (deg), ``reason`` (short: not far enough;
              not_back: did not come back; brief: a spike; joined: under way when counting
              began) and ``text``, what to tell the patient (or null)
``set``       a set finished: set, ``stage`` (resting or done), rest (s)
``cue``       ``text``: one short instruction for the patient (the page may speak it)
``error``     ``code``, ``message`` and ``seq`` (null for text messages) about one message; the
              connection stays usable
``ended``     the session is complete: ``summary`` (reps per set, best and mean ROM, best peak,
              target, partials, form flag counts, the pain report's URL); then a close with 1000

Close codes: 4401 not allowed (anonymous, not the owner, session not in progress), 4408 too many
bad messages in a row or a flood beyond the rate limit, 4409 the session was ended elsewhere, and:

4403 signed out: the browser session behind the socket signed out, timed out (idle or absolute
     lifetime: web/signin_lifetime.py) or was deleted, the user's password changed, or the
     user was deactivated (sessions/live_users.py). It comes within LIVE_ACCESS_CHECK_S (2 s) of
     an ending that sends no event, at once otherwise; from the moment it is decided no frame is
     processed (frames in flight are dropped, their answers too). The page must not reconnect.
4429 too many live sockets: the user already holds LIVE_MAX_SOCKETS_PER_USER of them, in any
     process (sessions/socket_cap.py); an ``error`` with code ``too_many_sockets`` comes first.
     The page must not reconnect.
4503 the service is busy: the pose workers alive already serve as many streams as they can at
     full rate (sessions/socket_cap.py live_capacity); an ``error`` with code ``service_busy``
     and ``retry_s`` (LIVE_BUSY_RETRY_S, 30) comes first. The session is kept; the page tries
     again after ``retry_s`` seconds.
1013 try again later: the server lost Redis (a restart, the network) under the connection. The
     repetitions counted on it are stored before the close; the page reconnects and its next
     ``ready`` resumes the counts.
"""

import json
import math
import struct
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.urls import reverse

from analysis.counting import PartialRepetition
from analysis.pose.frames import MAX_FRAME_BYTES, FrameError, check_frame
from analysis.pose.types import PoseWire
from analysis.repetitions import RepetitionMetrics, SideSummary, per_side, symmetry_pct
from analysis.tracker import Feedback, Stage
from sessions.models import ExerciseSession

FRAME_HEADER = struct.Struct(">2sBxId")
MAGIC = b"RF"
VERSION = 1
MAX_MESSAGE_BYTES = FRAME_HEADER.size + MAX_FRAME_BYTES
MAX_TEXT_BYTES = 4096
# The session time derived from capture times must stay a sane number: a capture time of 1e300 ms
# overflowed the pose engine's microsecond timestamps, and each later frame of the stream cost a
# pose worker a fresh engine (found by tests/sessions/test_protocol_fuzz.py).
MAX_CAPTURE_SPAN_MS = 24 * 3600 * 1000.0

CLOSE_NOT_ALLOWED = 4401
CLOSE_ABUSE = 4408
CLOSE_ENDED = 4409
CLOSE_SIGNED_OUT = 4403
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_BUSY = 4503
CLOSE_TRY_AGAIN = 1013


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


def image_problem(image: bytes) -> tuple[str, str] | None:
    """(code, message) when a frame's image fails the checks that need no decoding: the frame
    guard's (size, format, claimed dimensions), and live frames must be JPEG."""
    header = check_frame(image)
    if isinstance(header, FrameError):
        return header.value, header.message
    if header.format != "jpeg":
        return "not_jpeg", "Frames must be JPEG images."
    return None


def encode_frame(sequence: int, capture_ms: float, image: bytes) -> bytes:
    return FRAME_HEADER.pack(MAGIC, VERSION, sequence, capture_ms) + image


def parse_control(text: str) -> dict[str, Any] | ProtocolError:
    if len(text) > MAX_TEXT_BYTES:
        return ProtocolError.TOO_LARGE
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # "[" * 2000 is within the limit but nests too deep
        return ProtocolError.BAD_JSON
    # A "type" that is a list or an object is unhashable: not a known type, and no TypeError.
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return ProtocolError.UNKNOWN_TYPE
    if message["type"] not in CONTROL_TYPES:
        return ProtocolError.UNKNOWN_TYPE
    return message


CONTROL_TYPES = frozenset({"end"})


class StreamGuard:
    """Per-connection checks on frames: strictly increasing sequence numbers, capture times that
    do not go back (nor run more than MAX_CAPTURE_SPAN_MS past the first), a token bucket (a
    steady rate with a small burst), and a count of refusals since the last good frame that ends
    in a close."""

    def __init__(self, *, rate_per_s: float = 30.0, burst: int = 10, max_strikes: int = 20):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_strikes = max_strikes
        self._tokens = float(burst)
        self._refilled_at: float | None = None
        self._last_sequence = -1
        self._last_capture_ms = -math.inf
        self._first_capture_ms: float | None = None
        self.strikes = 0

    def admit(self, frame: Frame, now_s: float) -> ProtocolError | None:
        """None when the frame may go on to the image checks; a good image then calls
        `accepted`, a bad one `refuse`."""
        if frame.sequence <= self._last_sequence or not self._in_time(frame.capture_ms):
            return self.refuse(ProtocolError.SEQUENCE)
        if not self._take_token(now_s):
            return self.refuse(ProtocolError.RATE)
        self._last_sequence = frame.sequence
        self._last_capture_ms = frame.capture_ms
        if self._first_capture_ms is None:
            self._first_capture_ms = frame.capture_ms
        return None

    def _in_time(self, capture_ms: float) -> bool:
        """Not before the last admitted frame, not beyond MAX_CAPTURE_SPAN_MS after the first."""
        if capture_ms < self._last_capture_ms:
            return False
        first = self._first_capture_ms
        return first is None or capture_ms - first <= MAX_CAPTURE_SPAN_MS

    def accepted(self) -> None:
        self.strikes = 0

    def refuse(self, error: ProtocolError) -> ProtocolError:
        self.strike()
        return error

    def strike(self) -> None:
        """One more bad message (also a frame whose image the frame guard refused)."""
        self.strikes += 1

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


# --- Server messages -----------------------------------------------------------------------------
def error_message(code: str, message: str, sequence: int | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "seq": sequence}


ERROR_TEXT = {
    ProtocolError.TOO_LARGE: f"Message larger than {MAX_MESSAGE_BYTES} bytes.",
    ProtocolError.BAD_HEADER: "A frame must start with the 16-byte RF header (version 1).",
    ProtocolError.SEQUENCE: (
        "Sequence numbers must increase; capture times must not go back or leap a day ahead."
    ),
    ProtocolError.RATE: "Too many frames: slow down.",
    ProtocolError.BAD_JSON: "Text messages must be JSON.",
    ProtocolError.UNKNOWN_TYPE: f"Text messages must have a type in {sorted(CONTROL_TYPES)}.",
}


def pose_message(
    sequence: int, pose: PoseWire | None, feedback: Feedback, dropped: int
) -> dict[str, Any]:
    landmarks = None
    if pose is not None:
        landmarks = [
            [round(x, 4), round(y, 4), visibility]
            for (x, y, _), visibility in zip(pose["image_xyz"], pose["visibility"], strict=True)
        ]
    return {
        "type": "pose",
        "seq": sequence,
        "landmarks": landmarks,
        "stage": feedback.stage.value,
        "set": feedback.set_number,
        "reps": feedback.reps_in_set,
        "angle": feedback.angle_deg,
        "band": feedback.band,
        "hold": feedback.hold_s,
        "countdown": feedback.countdown_s,
        "rest": feedback.rest_remaining_s,
        "placement": feedback.placement,
        "advice": feedback.advice,
        "side": feedback.side,
        "identity": feedback.identity,
        "paused": feedback.paused,
        "dropped": dropped,
        "fps": wanted_fps(feedback.stage),
    }


# Frames a second the page need send: a repetition's turn needs the full rate to be timed and
# its peak caught; a countdown or a rest only the picture of the patient and whether they are in
# view. Rests take much of a session (30-60 s after each set), so they free much of a worker.
FULL_FPS = 15
RESTING_FPS = 5


def wanted_fps(stage: Stage) -> int:
    return RESTING_FPS if stage in (Stage.COUNTDOWN, Stage.RESTING, Stage.DONE) else FULL_FPS


def event_messages(feedback: Feedback, form_labels: dict[str, str]) -> list[dict[str, Any]]:
    """The messages besides ``pose`` that one frame's feedback calls for, in the order the page
    should show them."""
    messages: list[dict[str, Any]] = []
    if (rep := feedback.repetition) is not None:
        messages.append(rep_message(rep, form_labels))
    if (partial := feedback.partial) is not None:
        messages.append(partial_message(partial, feedback.not_counted))
    if feedback.set_finished:
        messages.append(
            {
                "type": "set",
                "set": feedback.set_number,
                "stage": feedback.stage.value,
                "rest": feedback.rest_remaining_s,
            }
        )
    if feedback.cue:
        messages.append({"type": "cue", "text": feedback.cue})
    return messages


def partial_message(partial: PartialRepetition, why: str | None) -> dict[str, Any]:
    return {
        "type": "partial",
        "set": partial.set_number,
        "peak": round(partial.peak_deg, 1),
        "reason": partial.reason,
        "text": why,
    }


def rep_message(rep: RepetitionMetrics, form_labels: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "rep",
        "set": rep.set_number,
        "index": rep.index,
        "rom": round(rep.rom_deg, 1),
        "min": round(rep.min_deg, 1),
        "max": round(rep.max_deg, 1),
        "duration": round(rep.duration_s, 2),
        "hold": rep.hold_s,
        "form": [form_labels.get(code, code) for code in rep.form_flags],
        "quality": rep.quality,
        "quality_reasons": rep.quality_reasons,
    }


def summary(session: ExerciseSession, reps: list[RepetitionMetrics]) -> dict[str, Any]:
    """The ``ended`` message's summary of a completed session."""
    per_set = Counter(rep.set_number for rep in reps)
    labels = session.exercise.definition().form_labels
    flags = Counter(labels.get(code, code) for rep in reps for code in rep.form_flags)
    headline, text = outcome_text(session)
    sides = per_side(reps, session.exercise.definition().thresholds.direction)
    return {
        "outcome": session.outcome,
        "headline": headline,
        "outcome_text": text,
        "counts_towards_plan": session.counts_towards_plan,
        "sets": [{"set": n, "reps": per_set[n]} for n in range(1, session.target_sets + 1)],
        "reps": session.reps_counted,
        "target_reps": session.reps_per_set,
        "sides": _sides(session, sides),
        "symmetry": symmetry_pct(sides),
        "best_rom": session.best_rom_deg,
        "mean_rom": session.mean_rom_deg,
        "best_peak": session.best_peak_deg,
        "target": session.target_rom_deg,
        "partials": session.partial_reps,
        "form": dict(flags.most_common()),
        "report_url": reverse("session_report", args=[session.pk]),
    }


def _sides(session: ExerciseSession, sides: list[SideSummary]) -> list[dict[str, Any]]:
    """Each side measured; with both sides in turn, also one that nothing was counted on."""
    measured = {summary.side: summary for summary in sides}
    names = ["left", "right"] if session.sides_in_turn > 1 else sorted(measured)
    rows = []
    for name in names:
        summary = measured.get(name)
        rows.append(
            {
                "side": name,
                "reps": summary.reps if summary else 0,
                "target": session.target_sets * session.target_reps,
                "mean_rom": summary.mean_rom_deg if summary else None,
                "best_peak": summary.best_peak_deg if summary else None,
            }
        )
    return rows


def outcome_text(session: ExerciseSession) -> tuple[str, str]:
    """What the patient is told about an ended session: a headline and a sentence. Praise only
    for work that was measured."""
    counted, prescribed = session.reps_counted, session.prescribed_reps
    outcome = session.outcome
    if outcome == ExerciseSession.Outcome.DONE:
        return "Well done — the session is finished", f"All {prescribed} repetitions were counted."
    if outcome == ExerciseSession.Outcome.PARTLY_DONE:
        plan = (
            "It counts towards your plan this week."
            if session.counts_towards_plan
            else f"A session counts towards your plan from {session.reps_needed_for_plan} "
            "repetitions."
        )
        counts = f"{counted} of {prescribed} repetitions were counted."
        return "Session finished — partly done", f"{counts} {plan}"
    if outcome == ExerciseSession.Outcome.REPORTED:
        return (
            "Thank you — the session is marked as done",
            "You did it without the camera, so nothing was measured; it counts towards your plan.",
        )
    return (
        "No repetitions were measured",
        "Nothing was counted, so this session does not count towards your plan. Make sure your "
        "whole body is in the picture and move through the exercise, then try again.",
    )
