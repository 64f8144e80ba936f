"""The live WebSocket protocol's parsing and per-connection guard (no network needed)."""

import struct

import pytest

from analysis.counting import PartialRepetition
from analysis.exercises import BY_SLUG
from analysis.tracker import VIEW_ADVICE, Feedback, Plan, Stage, why_not_counted
from sessions import protocol
from sessions.protocol import (
    FRAME_HEADER,
    MAX_MESSAGE_BYTES,
    Frame,
    ProtocolError,
    StreamGuard,
    encode_frame,
    parse_control,
    parse_frame,
)


def test_a_frame_round_trips_through_the_header():
    frame = parse_frame(encode_frame(7, 1234.5, b"\xff\xd8\xffjpeg"))
    assert frame == Frame(7, 1234.5, b"\xff\xd8\xffjpeg")


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"RF\x01",  # shorter than the header
        struct.pack(">2sBxId", b"XX", 1, 1, 0.0) + b"jpeg",  # wrong magic
        struct.pack(">2sBxId", b"RF", 9, 1, 0.0) + b"jpeg",  # unknown version
        struct.pack(">2sBxId", b"RF", 1, 1, float("nan")) + b"jpeg",
    ],
)
def test_a_malformed_header_is_refused(message):
    assert parse_frame(message) is ProtocolError.BAD_HEADER


def test_an_oversize_message_is_refused_before_anything_else():
    assert parse_frame(b"\0" * (MAX_MESSAGE_BYTES + 1)) is ProtocolError.TOO_LARGE
    assert FRAME_HEADER.size == 16


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"type": "end"}', {"type": "end"}),
        ("not json", ProtocolError.BAD_JSON),
        ("[1, 2]", ProtocolError.UNKNOWN_TYPE),
        ('{"type": "launch"}', ProtocolError.UNKNOWN_TYPE),
        ('{"type": "end", "pad": "' + "x" * 5000 + '"}', ProtocolError.TOO_LARGE),
    ],
)
def test_control_messages_are_json_with_a_known_type(text, expected):
    assert parse_control(text) == expected


def test_sequence_numbers_must_increase():
    guard = StreamGuard()
    assert guard.admit(Frame(5, 0.0, b""), now_s=0.0) is None
    assert guard.admit(Frame(5, 0.0, b""), now_s=0.1) is ProtocolError.SEQUENCE
    assert guard.admit(Frame(3, 0.0, b""), now_s=0.2) is ProtocolError.SEQUENCE
    assert guard.admit(Frame(6, 0.0, b""), now_s=0.3) is None


def test_a_flood_is_cut_to_the_rate_and_repeated_abuse_is_noticed():
    guard = StreamGuard(rate_per_s=15, burst=5, max_strikes=20)
    results = [guard.admit(Frame(n, 0.0, b""), now_s=n * 0.001) for n in range(100)]
    admitted = sum(result is None for result in results)
    assert 5 <= admitted <= 7  # the burst, plus what 0.1 s at 15/s refills
    assert guard.abusive


def test_a_steady_stream_at_the_rate_is_never_refused():
    guard = StreamGuard(rate_per_s=15, burst=5)
    assert all(guard.admit(Frame(n, 0.0, b""), now_s=n / 15) is None for n in range(300))
    assert not guard.abusive


def test_a_movement_that_did_not_count_says_why_and_the_pose_carries_set_up_advice():
    partial = PartialRepetition(
        set_number=1,
        side="right",
        start_s=1.0,
        end_s=3.0,
        peak_deg=72.0,
        needed_deg=36.0,
        rom_deg=30.0,
        reason="short",
    )
    plan = Plan(BY_SLUG["squat"], side="right", sets=1, reps=5, target_deg=90)
    feedback = Feedback(
        Stage.COUNTING,
        1,
        0,
        partial=partial,
        not_counted=why_not_counted(partial, plan),
        advice=VIEW_ADVICE["turn_side"],
    )
    (message,) = protocol.event_messages(feedback, {})
    assert message == {
        "type": "partial",
        "set": 1,
        "peak": 72.0,
        "reason": "short",
        "text": "Go a bit further: 72 of 90°",
    }
    pose = protocol.pose_message(7, None, feedback, dropped=0)
    assert pose["advice"] == VIEW_ADVICE["turn_side"] and pose["placement"] is None


@pytest.mark.parametrize(
    ("stage", "fps"),
    [
        (Stage.PLACING, 15),
        (Stage.COUNTDOWN, 5),
        (Stage.COUNTING, 15),
        (Stage.RESTING, 5),
        (Stage.DONE, 5),
    ],
)
def test_the_page_is_asked_for_fewer_frames_while_nothing_is_counted(
    stage: Stage, fps: int
) -> None:
    pose = protocol.pose_message(1, None, Feedback(stage, 1, 0), dropped=0)
    assert pose["fps"] == fps
