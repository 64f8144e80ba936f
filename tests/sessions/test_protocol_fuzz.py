"""Property-based fuzzing (hypothesis) of the live WebSocket protocol, sessions.protocol.

The pure half (no network): any bytes and any text are parsed into a frame or control message
or refused with a documented error, never an exception; frames round-trip through their header;
the per-connection StreamGuard keeps its invariants under any sequence of frames and clock ticks.
The other half sends generated streams of messages to the real consumer through the real ASGI
application (origin check, session-cookie auth, routing, local pose worker processes) and checks
every reaction against the documented rules, counting the messages and the memory.
Runs are derandomized so CI sees the same inputs every time.
"""

import asyncio
import functools
import gc
import json
import logging
import math
import random
import struct
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from analysis.pose.frames import MAX_FRAME_BYTES, FrameError
from rehab.asgi import application
from sessions import protocol
from sessions.models import ExerciseSession
from sessions.pose_client import BUSY_ANSWER, FAILED_ANSWER, TIMEOUT_ANSWER
from sessions.protocol import (
    CONTROL_TYPES,
    ERROR_TEXT,
    FRAME_HEADER,
    MAGIC,
    MAX_CAPTURE_SPAN_MS,
    MAX_MESSAGE_BYTES,
    MAX_TEXT_BYTES,
    VERSION,
    Frame,
    ProtocolError,
    StreamGuard,
    encode_frame,
    image_problem,
    parse_control,
    parse_frame,
)
from sessions.services import session_start
from tests.sessions.test_live_consumer import headers_of

T = TypeVar("T")

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

IMAGE_CODES = {error.value for error in FrameError} | {"not_jpeg"}


# --- Binary messages ------------------------------------------------------------------------------
@st.composite
def any_size_message(draw: st.DrawFn) -> bytes:
    """Bytes of any length up to daphne's 1 MiB message limit (past the protocol's own limit):
    short ones drawn by hypothesis, long ones expanded from a drawn seed, some behind a valid or
    nearly valid header."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    size = draw(st.integers(0, 1024 * 1024))
    prefix = draw(
        st.sampled_from(
            [b"", FRAME_HEADER.pack(MAGIC, VERSION, 1, 0.0), FRAME_HEADER.pack(MAGIC, 2, 1, 0.0)]
        )
    )
    return (prefix + random.Random(draw(st.integers(0, 2**32))).randbytes(size))[:size]


def well_formed(message: bytes) -> bool:
    """An independent statement of what the header must be (docstring of sessions.protocol)."""
    if not FRAME_HEADER.size <= len(message) <= MAX_MESSAGE_BYTES:
        return False
    magic, version, reserved = message[:2], message[2], message[3]
    capture_ms = struct.unpack(">d", message[8:16])[0]
    del reserved  # reserved is ignored, whatever its value
    return magic == b"RF" and version == 1 and math.isfinite(capture_ms)


@settings(FUZZ, max_examples=1500)
@given(any_size_message())
def test_any_binary_message_is_a_frame_or_a_documented_refusal(message: bytes) -> None:
    parsed = parse_frame(message)
    if isinstance(parsed, Frame):
        assert well_formed(message)
        assert parsed.sequence == int.from_bytes(message[4:8], "big")
        assert parsed.image == message[16:]
        problem = image_problem(parsed.image)
        assert problem is None or (problem[0] in IMAGE_CODES and problem[1])
    else:
        assert not well_formed(message)
        assert parsed in ERROR_TEXT
        expected = (
            ProtocolError.TOO_LARGE
            if len(message) > MAX_MESSAGE_BYTES
            else ProtocolError.BAD_HEADER
        )
        assert parsed is expected


@settings(FUZZ, max_examples=500)
@given(
    st.integers(0, 2**32 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.one_of(st.binary(max_size=256), st.integers(0, MAX_FRAME_BYTES).map(bytes)),
)
def test_any_frame_round_trips_through_its_header(
    sequence: int, capture_ms: float, image: bytes
) -> None:
    message = encode_frame(sequence, capture_ms, image)
    assert len(message) == FRAME_HEADER.size + len(image) <= MAX_MESSAGE_BYTES
    assert parse_frame(message) == Frame(sequence, capture_ms, image)


# --- Text messages --------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def control_text(draw: st.DrawFn) -> str:
    """Any text a page or an attacker may send: arbitrary unicode, JSON objects with any "type"
    (unhashable ones too), other JSON, nesting deeper than the parser's recursion limit, and
    padding to any size up to daphne's 1 MiB."""
    kind = draw(st.sampled_from(["text", "object", "json", "nested", "huge"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "object":
        body = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
        body["type"] = draw(st.one_of(st.sampled_from(["end", "END", "frame", ""]), json_values))
        return json.dumps(body)
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "nested":
        depth = draw(st.integers(1, MAX_TEXT_BYTES))
        opener = draw(st.sampled_from(["[", '{"a":', '{"type":[']))
        return (opener * depth)[: draw(st.integers(depth, MAX_TEXT_BYTES))]
    return '{"type": "end", "pad": "' + "x" * draw(st.integers(MAX_TEXT_BYTES, 1024 * 1024)) + '"}'


@settings(FUZZ, max_examples=1500)
@given(control_text())
def test_any_text_message_is_a_known_control_or_a_documented_refusal(text: str) -> None:
    parsed = parse_control(text)
    if isinstance(parsed, ProtocolError):
        assert parsed in ERROR_TEXT
        if len(text) > MAX_TEXT_BYTES:
            assert parsed is ProtocolError.TOO_LARGE
    else:
        assert isinstance(parsed, dict) and parsed["type"] in CONTROL_TYPES
        assert parsed == json.loads(text)


def test_json_nested_deeper_than_the_parser_allows_is_refused_as_bad_json() -> None:
    """Found by the fuzzing above: json.loads raised RecursionError (not a ValueError) and the
    exception left the consumer."""
    assert parse_control("[" * 2000) is ProtocolError.BAD_JSON


def test_an_unhashable_type_is_refused_as_unknown() -> None:
    """Found by the fuzzing above: `{"type": []} in frozenset` raised TypeError."""
    assert parse_control('{"type": []}') is ProtocolError.UNKNOWN_TYPE
    assert parse_control('{"type": {"end": 1}}') is ProtocolError.UNKNOWN_TYPE


# --- The per-connection guard ---------------------------------------------------------------------
class GuardMachine(RuleBasedStateMachine):
    """Any interleaving of frames (forward, repeated, going back, in time or not), clock ticks,
    accepted images and other strikes, checked against a plain model of the documented rules."""

    @initialize(
        rate=st.floats(0.5, 1000),
        burst=st.integers(1, 50),
        max_strikes=st.integers(1, 40),
        start=st.floats(0, 1e6),
    )
    def start(self, rate: float, burst: int, max_strikes: int, start: float) -> None:
        self.guard = StreamGuard(rate_per_s=rate, burst=burst, max_strikes=max_strikes)
        self.rate, self.burst, self.max_strikes = rate, burst, max_strikes
        self.now = start
        self.first_admission_at: float | None = None
        self.admitted = 0  # frames that passed sequence and rate
        self.last_sequence = -1
        self.last_capture = -math.inf
        self.first_capture: float | None = None
        self.strikes = 0
        self.awaiting_image_check = False

    @rule(seconds=st.one_of(st.just(0.0), st.floats(0, 0.2), st.floats(0, 100)))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(
        step=st.integers(-3, 3),
        capture_step=st.one_of(
            st.floats(-100, 1000),
            st.just(0.0),
            st.floats(0, 2 * MAX_CAPTURE_SPAN_MS),  # leaps around the day the guard allows
            st.floats(allow_nan=False, allow_infinity=False),
        ),
    )
    def a_frame_arrives(self, step: int, capture_step: float) -> None:
        sequence = max(0, min(2**32 - 1, self.last_sequence + step))
        base = self.last_capture if math.isfinite(self.last_capture) else 0.0
        capture = base + capture_step
        if not math.isfinite(capture):
            return  # a header with it never parses (test_any_binary_message_...)
        result = self.guard.admit(Frame(sequence, capture, b""), self.now)
        leaps = (
            self.first_capture is not None and capture - self.first_capture > MAX_CAPTURE_SPAN_MS
        )
        if sequence <= self.last_sequence or capture < self.last_capture or leaps:
            assert result is ProtocolError.SEQUENCE
        else:
            assert result in (None, ProtocolError.RATE)
        if result is None:
            if self.first_admission_at is None:
                self.first_admission_at = self.now
                self.first_capture = capture
            self.admitted += 1
            self.last_sequence, self.last_capture = sequence, capture
            self.awaiting_image_check = True
        else:
            self.strikes += 1

    @precondition(lambda self: self.awaiting_image_check)
    @rule(good=st.booleans())
    def its_image_is_checked(self, good: bool) -> None:
        """A good image resets the strikes; a bad one (or a worker's frame error) is one more."""
        self.awaiting_image_check = False
        if good:
            self.guard.accepted()
            self.strikes = 0
        else:
            self.guard.strike()
            self.strikes += 1

    @rule()
    def a_broken_message_arrives(self) -> None:
        self.guard.strike()
        self.strikes += 1

    @invariant()
    def the_bucket_never_goes_negative_nor_above_the_burst(self) -> None:
        if hasattr(self, "guard"):
            assert -1e-9 <= self.guard._tokens <= self.burst + 1e-9

    @invariant()
    def no_more_frames_pass_than_the_burst_plus_the_rate_allows(self) -> None:
        first = getattr(self, "first_admission_at", None)
        if first is not None:
            elapsed = self.now - first
            assert self.admitted <= self.burst + self.rate * elapsed + 1e-6

    @invariant()
    def it_is_abusive_exactly_after_the_documented_strikes_in_a_row(self) -> None:
        if hasattr(self, "guard"):
            assert self.guard.strikes == self.strikes
            assert self.guard.abusive == (self.strikes >= self.max_strikes)


GuardMachine.TestCase.settings = settings(FUZZ, max_examples=300, stateful_step_count=60)
test_the_stream_guard_keeps_its_rules_under_any_interleaving = GuardMachine.TestCase


@settings(FUZZ, max_examples=300)
@given(
    rate=st.floats(0.5, 1000),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 10), min_size=1, max_size=200),
)
def test_frames_spaced_no_closer_than_the_rate_are_never_refused(
    rate: float, burst: int, gaps: list[float]
) -> None:
    guard = StreamGuard(rate_per_s=rate, burst=burst)
    now = 0.0
    for sequence, gap in enumerate(gaps):
        now += 1.001 / rate + gap  # a hair over the interval: float rounding is not the point
        assert guard.admit(Frame(sequence, now * 1000, b""), now) is None
    assert guard.strikes == 0 and not guard.abusive


def test_a_capture_time_leaping_more_than_a_day_past_the_first_frame_is_refused() -> None:
    """Found by the live fuzzing below: a capture time of 1e300 ms overflowed the pose engine's
    timestamps, and every later frame of the stream made a pose worker build a fresh engine."""
    guard = StreamGuard()
    assert guard.admit(Frame(1, 5000.0, b""), now_s=0.0) is None
    assert guard.admit(Frame(2, 5000.0 + MAX_CAPTURE_SPAN_MS, b""), now_s=0.1) is None
    assert guard.admit(Frame(3, 5001.0 + MAX_CAPTURE_SPAN_MS, b""), now_s=0.2) is (
        ProtocolError.SEQUENCE
    )
    assert guard.admit(Frame(4, 1e300, b""), now_s=0.3) is ProtocolError.SEQUENCE


def test_error_text_covers_every_protocol_error() -> None:
    assert set(ERROR_TEXT) == set(ProtocolError)
    assert all(isinstance(text, str) and text for text in ERROR_TEXT.values())


# =================================================================================================
# The real consumer: generated streams through the real ASGI application
# =================================================================================================
# Daphne refuses WebSocket messages above 1 MiB itself (autobahn's maxMessagePayloadSize, daphne's
# default websocket_max_message_size); the consumer never sees them. Below that, the protocol's
# own limits apply in the consumer: MAX_MESSAGE_BYTES (header + MAX_FRAME_BYTES) for binary
# messages in parse_frame, MAX_TEXT_BYTES characters for text in parse_control.
DAPHNE_MAX_MESSAGE = 1024 * 1024
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

MESSAGES_REQUIRED = 10_000
CONNECTIONS = 150  # hypothesis examples: one connection each (plus reconnections after a close)
MESSAGES_PER_CONNECTION = (60, 100)
# Memory: the Python allocations of the test process, which runs the consumer (tracemalloc).
# After a warm-up session (modules imported, pose workers started) it may grow by at most
# MAX_GROWTH_BYTES however many messages follow, and answering one message may take at most
# MAX_PEAK_BYTES beyond what was held before it (a 1 MiB message, its image slice, the pickled
# copy for the pose worker). channels_redis keeps an empty queue behind for each closed
# connection (its receive_buffer: django/channels_redis#212, #384): with Redis the bound grows by
# REDIS_LAYER_BYTES_PER_CONNECTION, per connection, never per message.
MAX_GROWTH_BYTES = 1024 * 1024
REDIS_LAYER_BYTES_PER_CONNECTION = 8 * 1024
MAX_PEAK_BYTES = 8 * 1024 * 1024

SERVER_TYPES = {"ready", "pose", "rep", "partial", "set", "cue", "error", "ended"}
EVENT_TYPES = {"rep", "partial", "set", "cue"}  # follow the pose of the frame that caused them
POSE_ANSWERS = {a["error"] for a in (TIMEOUT_ANSWER, FAILED_ANSWER, BUSY_ANSWER)}


def documented_close_codes() -> set[int]:
    """1000 after ``ended``, and every CLOSE_* code that sessions.protocol documents now."""
    codes = {value for name, value in vars(protocol).items() if name.startswith("CLOSE_")}
    return {1000} | {code for code in codes if isinstance(code, int)}


def _jpeg(image: np.ndarray, width: int) -> bytes:
    height = round(image.shape[0] * width / image.shape[1])
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()


@functools.cache
def real_images() -> dict[str, bytes]:
    """Small real JPEGs (the person of tests/fixtures/pose.jpg at four sizes, and an empty grey
    picture with nobody in it) and one PNG."""
    photo = cv2.imread(str(FIXTURES / "pose.jpg"))
    grey = np.full((120, 160, 3), 128, np.uint8)
    return {
        **{f"jpeg{width}": _jpeg(photo, width) for width in (640, 320, 160, 64)},
        "grey": cv2.imencode(".jpg", grey)[1].tobytes(),
        "png": cv2.imencode(".png", cv2.resize(photo, (80, 53)))[1].tobytes(),
    }


# What a generated message is: (kind, a small number, a size, a seed), expanded into bytes or text
# only when sent, from the connection's state (the sequence and capture time it has accepted).
# Hypothesis keeps the four numbers (cheap to draw and to shrink), not megabytes.
KIND_WEIGHTS = {  # per thousand messages
    "raw": 120,  # random bytes of any size up to daphne's limit: no header
    "random_image": 100,  # a valid header, then random bytes of any size around the frame limit
    # {"type": "end"}: the session completes (its alerts are refreshed, 0.7 s in eager Celery)
    # and the next message opens a new connection to a new session. Not last: hypothesis draws
    # the ends of a range often.
    "end": 2,
    "good": 90,  # a valid header and a real JPEG: goes to a pose worker
    "text": 80,  # arbitrary unicode
    "text_object": 80,  # a JSON object whose "type" is anything (unhashable too), never "end"
    "bad_magic": 60,
    "bad_version": 60,
    "short": 60,  # under the 16-byte header, down to an empty message
    "sequence_back": 60,  # a real JPEG whose sequence number does not increase
    "capture_back": 30,  # a real JPEG whose capture time goes back
    "claims_size": 60,  # a valid header, a JPEG start-of-frame claiming any size, random data
    "edited_jpeg": 50,  # a valid header, a real JPEG with a few bytes changed or cut off
    "non_finite": 30,  # a capture time that is NaN or infinite
    "padded": 30,  # a real JPEG padded to any size up to MAX_MESSAGE_BYTES (still valid)
    "png": 30,
    "any_capture": 20,  # a real JPEG with any finite capture time (far past or future)
    "nested": 20,  # JSON nested deeper than the parser's recursion limit
    "huge_text": 18,  # text of any size past MAX_TEXT_BYTES, up to daphne's limit
}
assert sum(KIND_WEIGHTS.values()) == 1000


def _kind_of(draw: int) -> str:
    """The kind of message number `draw` in 0..999 (hypothesis shrinks it towards "raw")."""
    for kind, weight in KIND_WEIGHTS.items():
        if draw < weight:
            return kind
        draw -= weight
    raise AssertionError(draw)


generated_message = st.tuples(
    st.integers(0, 999).map(_kind_of),
    st.integers(0, 2**16),
    st.integers(0, DAPHNE_MAX_MESSAGE),
    st.integers(0, 2**32),
)
Generated = tuple[str, int, int, int]


@dataclass
class Model:
    """What the server must have accepted so far on one connection (sessions.protocol's rules)."""

    max_strikes: int
    last_sequence: int = -1
    last_capture: float = -math.inf
    first_capture: float | None = None
    strikes: int = 0

    def in_time(self, capture_ms: float) -> bool:
        if capture_ms < self.last_capture:
            return False
        first = self.first_capture
        return first is None or capture_ms - first <= MAX_CAPTURE_SPAN_MS

    def next_frame(self, small: int) -> tuple[int, float]:
        """A sequence number and capture time the guard must accept."""
        base = self.last_capture if math.isfinite(self.last_capture) else 1000.0
        return min(self.last_sequence + 1 + small % 3, 2**32 - 1), base + (small % 200)


def expand(message: Generated, model: Model) -> bytes | str:
    kind, small, size, seed = message
    rng = random.Random(seed)
    images = real_images()
    jpeg = images[rng.choice(["jpeg640", "jpeg320", "jpeg160", "jpeg64", "grey"])]
    sequence, capture = model.next_frame(small)
    if kind == "raw":
        return rng.randbytes(size)
    if kind == "random_image":
        return encode_frame(sequence, capture, rng.randbytes(size % (MAX_FRAME_BYTES + 64)))
    if kind == "good":
        return encode_frame(sequence, capture, jpeg)
    if kind == "text":
        return (
            "".join(
                chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x10FFFF)]))
                for _ in range(small % 300)
            )
            .encode("utf-8", "replace")
            .decode("utf-8")
        )
    if kind == "text_object":
        kinds: list[Any] = ["", "END", "frame", "start", None, 1, 2.5, True, [], ["end"], {}]
        return json.dumps({"type": rng.choice(kinds), "seq": small, "data": "x" * (small % 50)})
    if kind == "bad_magic":
        return (
            FRAME_HEADER.pack(rng.randbytes(2).replace(b"R", b"Q"), VERSION, sequence, capture)
            + jpeg
        )
    if kind == "bad_version":
        return FRAME_HEADER.pack(MAGIC, rng.choice([0, 2, 255]), sequence, capture) + jpeg
    if kind == "short":
        return encode_frame(sequence, capture, b"")[: small % FRAME_HEADER.size]
    if kind == "sequence_back":
        back = max(0, model.last_sequence - small % 3)
        return encode_frame(back, capture, jpeg)
    if kind == "capture_back":
        return encode_frame(sequence, capture - 1 - small, jpeg)
    if kind == "claims_size":
        width, height = small % 0x10000, size % 0x10000
        sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + bytes(9)
        return encode_frame(sequence, capture, b"\xff\xd8" + sof + rng.randbytes(size % 4096))
    if kind == "edited_jpeg":
        edited = bytearray(images[rng.choice(["jpeg320", "jpeg160"])])
        for _ in range(1 + small % 4):
            at = rng.randrange(min(len(edited), 600) if rng.random() < 0.5 else len(edited))
            if rng.random() < 0.2:
                del edited[at:]
                break
            edited[at] = rng.randrange(256)
        return encode_frame(sequence, capture, bytes(edited))
    if kind == "non_finite":
        value = rng.choice([math.nan, math.inf, -math.inf])
        return FRAME_HEADER.pack(MAGIC, VERSION, sequence, value) + jpeg
    if kind == "padded":
        return encode_frame(
            sequence, capture, jpeg + bytes(size % (MAX_FRAME_BYTES - len(jpeg) + 1))
        )
    if kind == "png":
        return encode_frame(sequence, capture, images["png"])
    if kind == "any_capture":
        far = rng.choice([1e300, -1e300, 1e15, -1e15, 2.0**53, rng.uniform(-1e9, 1e9)])
        return encode_frame(sequence, max(far, model.last_capture), jpeg)
    if kind == "nested":
        return (rng.choice(["[", '{"a":', '{"type":[']) * MAX_TEXT_BYTES)[: 100 + size % 4000]
    if kind == "huge_text":
        # Past MAX_TEXT_BYTES, and within daphne's limit with the JSON around it.
        pad = MAX_TEXT_BYTES + size % (DAPHNE_MAX_MESSAGE - MAX_TEXT_BYTES - 64)
        return '{"type": "end", "pad": "' + "x" * pad + '"}'
    assert kind == "end", kind
    return json.dumps({"type": "end"})


@dataclass
class FuzzRecord:
    """Everything the fuzzing saw, for its assertions and its printed summary."""

    messages: int = 0
    connections: int = 0
    bytes_sent: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    slowest: list[tuple[float, str, str]] = field(default_factory=list)  # (s, kind, last reply)
    answers: Counter[str] = field(default_factory=Counter)  # "pose", "error:<code>", ...
    closes: Counter[int] = field(default_factory=Counter)
    unpredicted_closes: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # loop exceptions, logged errors
    examples: int = 0
    memory_after: list[int] = field(default_factory=list)  # traced bytes, every 10th example
    # The first and the latest heap snapshots: where it grew, said when the bound is passed.
    snapshots: list[tracemalloc.Snapshot] = field(default_factory=list)
    worst_peak: int = 0  # traced bytes above the level before the message, while answering it


class ErrorLog(logging.Handler):
    """ERROR records of the test process (the consumer's logger.exception, asyncio's "Task
    exception was never retrieved"): none may appear while fuzzing."""

    def __init__(self, record: FuzzRecord) -> None:
        super().__init__(logging.ERROR)
        self.record = record

    def emit(self, record: logging.LogRecord) -> None:
        self.record.problems.append(f"{record.name}: {record.getMessage()}")


def application_memory(record: FuzzRecord) -> int:
    """Bytes held by the Python heap of the test process, but for hypothesis' own bookkeeping
    (its engine keeps every example's choices, which grows with the number of examples)."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, "*/hypothesis/*"),
            tracemalloc.Filter(False, tracemalloc.__file__),
        ]
    )
    record.snapshots[1:] = [snapshot]
    return sum(trace.size for trace in snapshot.traces)


def growth_sites(record: FuzzRecord, count: int = 15) -> str:
    """The source lines whose allocations grew most from the first snapshot to the latest."""
    first, last = record.snapshots[0], record.snapshots[-1]
    return "\n".join(f"  {stat}" for stat in last.compare_to(first, "lineno")[:count])


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """On an event loop of its own thread, as tests/sessions/test_live_consumer.py does (the
    browser tests keep a loop running in the main thread)."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, scenario()).result()


class LiveFuzzer:
    """Sends generated messages one at a time to the real consumer and checks each reaction
    against the Model: the documented answer, or a documented close (then reconnects)."""

    def __init__(
        self,
        record: FuzzRecord,
        headers: list[tuple[bytes, bytes]],
        patient: Any,
        prescription: Any,
    ) -> None:
        self.record = record
        self.headers = headers
        self.patient = patient
        self.prescription = prescription
        self.comm: Any = None
        self.model = Model(max_strikes=StreamGuard().max_strikes)
        self.after_pose = False  # rep/partial/set/cue/ended may follow a pose
        self.last = ""  # the last reply, for the record of the slowest exchanges
        self.session: ExerciseSession | None = None

    async def connect(self) -> None:
        self.session = await database_sync_to_async(session_start)(
            patient=self.patient, prescription=self.prescription
        )
        path = f"/ws/sessions/{self.session.pk}/live/"
        self.comm = WebsocketCommunicator(application, path, self.headers)
        connected, _ = await self.comm.connect(timeout=10)
        assert connected
        ready = await self.comm.receive_json_from(timeout=10)
        assert ready["type"] == "ready", ready
        self.record.connections += 1
        self.model = Model(max_strikes=self.model.max_strikes)
        self.after_pose = False

    async def disconnect(self) -> None:
        if self.comm is not None:
            # Raises whatever the application raised, if it failed.
            await self.comm.disconnect(timeout=10)
            self.comm = None

    async def send(self, generated: Generated) -> None:
        if self.comm is None:
            await self.connect()
        message = expand(generated, self.model)
        self.record.messages += 1
        self.record.kinds[generated[0]] += 1
        self.record.bytes_sent += len(message)
        # As daphne hands it over (send_to refuses empty messages, which daphne does deliver).
        key = "bytes" if isinstance(message, bytes) else "text"
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        sent_at = time.perf_counter()
        await self.comm.send_input({"type": "websocket.receive", key: message})
        expected = self.expect(message)
        await self.receive_answer(expected)
        took = time.perf_counter() - sent_at
        self.record.seconds[generated[0]] += took
        self.record.slowest = sorted([*self.record.slowest, (took, generated[0], self.last)])[-5:]
        peak = tracemalloc.get_traced_memory()[1] - before
        self.record.worst_peak = max(self.record.worst_peak, peak)

    def expect(self, message: bytes | str) -> dict[str, Any]:
        """What the server must answer, by the documented rules (sessions.protocol), as far as
        they are known before the answer: a rate refusal and a pose worker's verdict are not."""
        model = self.model
        if isinstance(message, str):
            control = parse_control(message)
            if isinstance(control, ProtocolError):
                return {"codes": {control.value}, "seq": None, "strike": True}
            return {"end": True}
        frame = parse_frame(message)
        if isinstance(frame, ProtocolError):
            return {"codes": {frame.value}, "seq": None, "strike": True}
        if frame.sequence <= model.last_sequence or not model.in_time(frame.capture_ms):
            return {"codes": {ProtocolError.SEQUENCE.value}, "seq": frame.sequence, "strike": True}
        problem = image_problem(frame.image)
        return {"frame": frame, "seq": frame.sequence, "problem": problem and problem[0]}

    async def receive_answer(self, expected: dict[str, Any]) -> None:
        worker_bound = "frame" in expected and not expected["problem"]
        timeout = 60 if worker_bound else 10  # the first frames wait for the models to load
        while True:
            output = await self.comm.receive_output(timeout=timeout)
            if output["type"] == "websocket.close":
                return await self.closed(output.get("code"), predicted=False)
            assert output["type"] == "websocket.send" and output.get("text"), output
            reply = json.loads(output["text"])
            self.last = f"{reply['type']}:{reply.get('code', '')}"
            self.record.answers[reply["type"] + ":" + str(reply.get("code", ""))] += 1
            assert reply["type"] in SERVER_TYPES, reply
            if reply["type"] in EVENT_TYPES or reply["type"] == "ended":
                assert self.after_pose or expected.get("end"), (reply, expected)
                if reply["type"] == "ended":
                    return await self.closed(
                        await self.close_code(), predicted=True, code_wanted=1000
                    )
                continue
            self.after_pose = False
            assert reply["type"] in ("error", "pose") and not expected.get("end"), (reply, expected)
            if self.check(reply, expected):  # the documented number of strikes in a row
                code = await self.close_code()
                return await self.closed(code, predicted=True, code_wanted=protocol.CLOSE_ABUSE)
            return

    def check(self, reply: dict[str, Any], expected: dict[str, Any]) -> bool:
        """The reply against the expectation; the model follows. True when the documented strike
        limit is reached: the server must close now."""
        model = self.model
        assert reply["seq"] == expected["seq"], (reply, expected)
        if "frame" not in expected:
            assert reply["type"] == "error" and reply["code"] in expected["codes"], (
                reply,
                expected,
            )
            assert reply["message"]
            model.strikes += 1
            return model.strikes >= model.max_strikes
        if reply["type"] == "error" and reply["code"] == ProtocolError.RATE.value:
            model.strikes += 1  # refused before the image was looked at: nothing advances
            return model.strikes >= model.max_strikes
        frame = expected["frame"]
        model.last_sequence, model.last_capture = frame.sequence, frame.capture_ms
        if model.first_capture is None:
            model.first_capture = frame.capture_ms
        if expected["problem"]:
            assert reply["type"] == "error" and reply["code"] == expected["problem"], reply
            model.strikes += 1
            return model.strikes >= model.max_strikes
        model.strikes = 0  # a good image, whatever the pose worker says about it
        if reply["type"] == "pose":
            assert reply["dropped"] == 0  # in lockstep no frame waits: nothing is replaced
            assert reply["landmarks"] is None or len(reply["landmarks"]) == 33
            self.after_pose = True
            return False
        assert reply["code"] in POSE_ANSWERS | IMAGE_CODES, reply
        if reply["code"] in IMAGE_CODES:
            model.strikes += 1  # the worker could not decode it: counts as a bad frame
        return model.strikes >= model.max_strikes

    async def close_code(self) -> int | None:
        output = await self.comm.receive_output(timeout=10)
        assert output["type"] == "websocket.close", output
        return output.get("code")

    async def closed(
        self, code: int | None, predicted: bool, code_wanted: int | None = None
    ) -> None:
        assert code in documented_close_codes(), code
        self.record.closes[code] += 1
        if code_wanted is not None:
            assert code == code_wanted
        if not predicted:
            self.record.unpredicted_closes[code] += 1
        await self.disconnect()


def warm_up(headers: list[tuple[bytes, bytes]], patient: Any, prescription: Any) -> None:
    """One short session before measuring: a real frame (the pose worker processes start and
    load their models) and the end (completing a session loads the charts behind the alerts)."""
    fuzzer = LiveFuzzer(FuzzRecord(), headers, patient, prescription)

    async def scenario() -> None:
        try:
            await fuzzer.send(("good", 0, 0, 0))
            await fuzzer.send(("end", 0, 0, 0))
        finally:
            await fuzzer.disconnect()

    run(scenario)
    assert fuzzer.record.answers["pose:"] == 1 and fuzzer.record.answers["ended:"] == 1


@pytest.fixture
def live_settings(settings: Any, eager_celery: None) -> None:
    # The local pose worker processes and Celery in-process whatever the environment, as in
    # tests/sessions/test_live_consumer.py. The rate limit and strike count stay as configured.
    settings.POSE_TRANSPORT = "local"


@pytest.mark.django_db(transaction=True)
def test_generated_streams_are_answered_or_closed_as_documented_with_bounded_memory(
    world: Any, live_settings: None
) -> None:
    record = FuzzRecord()
    headers = headers_of(world.p.user)
    prescription = world.a.open_session.prescription
    log = ErrorLog(record)
    logging.getLogger().addHandler(log)
    tracemalloc.start()
    warm_up(headers, world.p, prescription)
    record.memory_after.append(application_memory(record))
    started = time.monotonic()

    @settings(FUZZ, max_examples=CONNECTIONS)
    @given(
        st.lists(
            generated_message,
            min_size=MESSAGES_PER_CONNECTION[0],
            max_size=MESSAGES_PER_CONNECTION[1],
        )
    )
    def one_connection(stream: list[Generated]) -> None:
        fuzzer = LiveFuzzer(record, headers, world.p, prescription)

        async def scenario() -> None:
            # A task that failed unobserved is reported to this handler when it is collected.
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda _, context: record.problems.append(str(context)))
            try:
                for generated in stream:
                    await fuzzer.send(generated)
            finally:
                await fuzzer.disconnect()

        run(scenario)
        record.examples += 1
        if record.examples % 10 == 0:
            record.memory_after.append(application_memory(record))
        assert not record.problems, record.problems

    try:
        one_connection()
        record.memory_after.append(application_memory(record))
    finally:
        tracemalloc.stop()
        logging.getLogger().removeHandler(log)
    elapsed = time.monotonic() - started
    assert not record.problems, record.problems
    growth = max(record.memory_after) - record.memory_after[0]
    growth_bound = MAX_GROWTH_BYTES
    if "channels_redis" in django_settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        growth_bound += REDIS_LAYER_BYTES_PER_CONNECTION * record.connections
    print(
        f"\nlive fuzzing: {record.messages} messages ({record.bytes_sent / 2**20:.0f} MiB) on "
        f"{record.connections} connections in {elapsed:.1f} s; memory growth after the first "
        f"warm-up session {growth / 2**10:.0f} KiB (bound {growth_bound // 2**10}), worst peak "
        f"while answering one message {record.worst_peak / 2**20:.1f} MiB "
        f"(bound {MAX_PEAK_BYTES // 2**20})\n  kinds {dict(record.kinds)}\n  answers "
        f"{dict(record.answers)}\n  closes {dict(record.closes)} unpredicted "
        f"{dict(record.unpredicted_closes)}\n  seconds per kind "
        f"{ {kind: round(took, 1) for kind, took in sorted(record.seconds.items())} }\n"
        f"  slowest {[(round(took, 2), kind, reply) for took, kind, reply in record.slowest]}"
    )
    assert record.messages >= MESSAGES_REQUIRED
    assert growth <= growth_bound, f"the heap grew most at:\n{growth_sites(record)}"
    assert record.worst_peak <= MAX_PEAK_BYTES
    # The fuzzing reached the interesting places: real poses, every protocol refusal, the worker's
    # own refusals, the abuse close and the end of a session.
    seen = set(record.answers)
    assert {"pose:", "ended:"} <= seen
    assert {f"error:{error.value}" for error in ProtocolError} <= seen
    assert {"error:not_jpeg", "error:dimensions", "error:undecodable"} <= seen
    assert record.closes[protocol.CLOSE_ABUSE] > 0 and record.closes[1000] > 0
    # No generated frame made the pose engine itself fail (each failure costs a worker a fresh
    # engine, seconds of CPU).
    assert record.answers["error:pose_failed"] == 0
