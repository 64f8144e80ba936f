"""Property-based fuzzing (hypothesis) of the frame guard, analysis.pose.frames.

The example-based tests (test_frames.py) pin each refusal on a hand-made input. Here hypothesis
generates the inputs: arbitrary bytes of any size up to past the byte limit, JPEG and PNG headers
built segment by segment with a known size, every cut of them, and edits of real encoded photos.
The properties: nothing raises; a well-formed header is read back exactly; a header cut before
its size is truncated, never misread; and whatever decodes is no larger than its header said and
within the limits. Runs are derandomized so CI sees the same inputs every time.
"""

import random
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.pose.frames import (
    MAX_FRAME_BYTES,
    MAX_HEIGHT,
    MAX_JPEG_SCANS,
    MAX_WIDTH,
    FrameError,
    ImageHeader,
    check_frame,
    decode_frame,
    read_header,
)

PHOTO = Path(__file__).resolve().parents[1] / "fixtures" / "pose.jpg"

# derandomize: the same examples on every run (no flaky CI, no local example database).
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SOF_MARKERS = sorted(set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC})
# Segments that carry a length and may come before the size: APPn, DQT, DHT, DRI, COM, DAC...
LENGTH_SEGMENTS = [*range(0xE0, 0xF0), 0xDB, 0xC4, 0xDD, 0xFE, 0xCC, 0xC8]
STANDALONE = [0x01, *range(0xD0, 0xD8)]


def within_limits(width: int, height: int) -> bool:
    return 0 < width <= MAX_WIDTH and 0 < height <= MAX_HEIGHT


def assert_a_sound_frame(frame: object) -> None:
    """What decode_frame may return: a refusal, or a BGR image no larger than the limits."""
    if isinstance(frame, FrameError):
        return
    assert isinstance(frame, np.ndarray)
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    # EXIF rotation may swap the sides; the pixel count and the longer side stay bounded.
    assert frame.shape[0] * frame.shape[1] <= MAX_WIDTH * MAX_HEIGHT
    assert max(frame.shape[:2]) <= max(MAX_WIDTH, MAX_HEIGHT)


# --- Any bytes ------------------------------------------------------------------------------------
@st.composite
def any_size_bytes(draw: st.DrawFn) -> bytes:
    """Bytes of any length from 0 to past MAX_FRAME_BYTES. Hypothesis draws short ones itself;
    long ones are expanded from a drawn seed (hypothesis cannot draw a megabyte cheaply)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=256))
    size = draw(st.integers(0, MAX_FRAME_BYTES + 4096))
    prefix = draw(st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"\xff\xd8"]))
    return (prefix + random.Random(draw(st.integers(0, 2**32))).randbytes(size))[:size]


@settings(FUZZ, max_examples=1500)
@given(any_size_bytes())
def test_any_bytes_of_any_size_get_a_header_or_a_refusal_and_never_raise(data: bytes) -> None:
    header = read_header(data)
    assert isinstance(header, ImageHeader | FrameError)
    checked = check_frame(data)
    if not data:
        assert checked is FrameError.EMPTY
    elif len(data) > MAX_FRAME_BYTES:
        assert checked is FrameError.TOO_LARGE
    elif isinstance(header, FrameError):
        assert checked is header
    elif within_limits(header.width, header.height):
        assert checked == header
    else:
        assert checked is FrameError.DIMENSIONS
    frame = decode_frame(data)
    assert_a_sound_frame(frame)
    if isinstance(checked, FrameError):
        assert frame is checked  # the decoder only ever sees what the guard let through


# --- JPEG headers built segment by segment --------------------------------------------------------
@dataclass(frozen=True)
class BuiltJpeg:
    data: bytes
    width: int
    height: int
    size_ends_at: int  # the offset just past the SOF's width field: any cut before it is truncated


@st.composite
def segment(draw: st.DrawFn) -> bytes:
    fill = b"\xff" * draw(st.integers(0, 3))  # fill bytes may precede any marker
    if draw(st.integers(0, 4)) == 0:
        return fill + bytes([0xFF, draw(st.sampled_from(STANDALONE))])
    marker = draw(st.sampled_from(LENGTH_SEGMENTS))
    payload = draw(st.binary(max_size=64))
    return fill + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


@st.composite
def built_jpeg(draw: st.DrawFn) -> BuiltJpeg:
    """SOI, any segments, then a start-of-frame with any 16-bit size, then anything."""
    head = b"\xff\xd8" + b"".join(draw(st.lists(segment(), max_size=6)))
    width = draw(st.integers(0, 0xFFFF))
    height = draw(st.integers(0, 0xFFFF))
    marker = draw(st.sampled_from(SOF_MARKERS))
    components = draw(st.sampled_from([1, 3]))
    sof_payload = struct.pack(">BHHB", 8, height, width, components) + bytes(3 * components)
    sof = bytes([0xFF, marker]) + struct.pack(">H", len(sof_payload) + 2) + sof_payload
    tail = draw(st.binary(max_size=128))
    # FF marker length(2) precision(1) height(2) width(2)
    return BuiltJpeg(head + sof + tail, width, height, len(head) + 2 + 2 + 1 + 4)


@settings(FUZZ, max_examples=1000)
@given(built_jpeg())
def test_a_jpeg_header_is_read_back_with_exactly_the_size_it_was_built_with(
    jpeg: BuiltJpeg,
) -> None:
    assert read_header(jpeg.data) == ImageHeader("jpeg", jpeg.width, jpeg.height)
    checked = check_frame(jpeg.data)
    if within_limits(jpeg.width, jpeg.height):
        assert checked == ImageHeader("jpeg", jpeg.width, jpeg.height)
    else:
        assert checked is FrameError.DIMENSIONS
    # There are no pixels behind the header: it must never come back as an image.
    assert isinstance(decode_frame(jpeg.data), FrameError)


@settings(FUZZ, max_examples=500)
@given(built_jpeg(), st.data())
def test_a_jpeg_header_cut_before_its_size_is_truncated_never_misread(
    jpeg: BuiltJpeg, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, jpeg.size_ends_at - 1), label="cut")
    assert read_header(jpeg.data[:cut]) is FrameError.TRUNCATED
    assert check_frame(jpeg.data[:cut]) is FrameError.TRUNCATED


@st.composite
def built_png(draw: st.DrawFn) -> tuple[bytes, int, int]:
    width = draw(st.integers(0, 2**32 - 1))
    height = draw(st.integers(0, 2**32 - 1))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + crc + draw(st.binary(max_size=64)), width, height


@settings(FUZZ, max_examples=500)
@given(built_png(), st.data())
def test_a_png_header_is_read_back_exactly_and_any_cut_of_it_is_truncated(
    png: tuple[bytes, int, int], data: st.DataObject
) -> None:
    raw, width, height = png
    assert read_header(raw) == ImageHeader("png", width, height)
    expected = (
        ImageHeader("png", width, height) if within_limits(width, height) else FrameError.DIMENSIONS
    )
    assert check_frame(raw) == expected
    assert isinstance(decode_frame(raw), FrameError)  # a header without image data
    cut = data.draw(st.integers(1, 23), label="cut")
    assert read_header(raw[:cut]) is FrameError.TRUNCATED


# --- Edits of real encoded photos -----------------------------------------------------------------
def _encoded_photos() -> list[tuple[bytes, tuple[int, int]]]:
    """The real photo (progressive) and small baseline JPEG and PNG re-encodings of it, with
    (height, width). Small ones keep each decode cheap; the original keeps the real structure."""
    raw = PHOTO.read_bytes()
    pixels = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    photos: list[tuple[bytes, tuple[int, int]]] = [(raw, (pixels.shape[0], pixels.shape[1]))]
    for width, extension in ((160, ".jpg"), (320, ".jpg"), (96, ".png")):
        height = round(pixels.shape[0] * width / pixels.shape[1])
        small = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
        photos.append((cv2.imencode(extension, small)[1].tobytes(), (height, width)))
    return photos


PHOTOS = _encoded_photos()


@st.composite
def edited_photo(draw: st.DrawFn) -> bytes:
    """A real JPEG or PNG with a few edits: overwritten bytes (half of them in the first 600
    bytes, where the header is), a cut, an inserted run of marker-like bytes, a removed run."""
    base, _ = draw(st.sampled_from(PHOTOS))
    buf = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        span = min(len(buf), 600) if draw(st.booleans()) else len(buf)
        if span == 0:
            break
        at = draw(st.integers(0, span - 1))
        kind = draw(st.sampled_from(["overwrite", "cut", "insert", "remove"]))
        if kind == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8))
            buf[at : at + len(patch)] = patch
        elif kind == "cut":
            del buf[at:]
        elif kind == "insert":
            run = draw(st.sampled_from([b"\xff", b"\xff\xd8", b"\xff\xd9", b"\xff\xda", b"\x00"]))
            buf[at:at] = run * draw(st.integers(1, 16))
        else:
            del buf[at : at + draw(st.integers(1, 256))]
    return bytes(buf)


@settings(FUZZ, max_examples=600)
@given(edited_photo())
def test_an_edited_real_photo_decodes_to_what_its_header_claims_or_is_refused(
    data: bytes,
) -> None:
    checked = check_frame(data)
    frame = decode_frame(data)
    assert_a_sound_frame(frame)
    if isinstance(frame, np.ndarray):
        assert isinstance(checked, ImageHeader)
        claimed = {(checked.height, checked.width), (checked.width, checked.height)}
        assert frame.shape[:2] in claimed
    elif isinstance(checked, FrameError):
        assert frame is checked
    else:
        assert frame is FrameError.UNDECODABLE


@settings(FUZZ, max_examples=60)
@given(st.sampled_from(PHOTOS), st.integers(0, MAX_FRAME_BYTES))
def test_a_real_photo_padded_to_any_size_up_to_the_limit_still_decodes(
    photo: tuple[bytes, tuple[int, int]], total: int
) -> None:
    base, shape = photo
    padded = base + bytes(max(0, total - len(base)))  # decoders ignore bytes after the image
    frame = decode_frame(padded)
    assert isinstance(frame, np.ndarray)
    assert frame.shape[:2] == shape
    assert decode_frame(padded + bytes(MAX_FRAME_BYTES + 1 - len(padded))) is FrameError.TOO_LARGE


# --- A regression found by the fuzzing above ------------------------------------------------------
_DECODE_BOMBS = """
import re, struct, zlib
from analysis.pose.frames import FrameError, decode_frame
ihdr = struct.pack(">IIBBBBB", 446, 7, 8, 2, 0, 0, 0)
png = b"\\x89PNG\\r\\n\\x1a\\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
png += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
for length in (0xD090C260, 2**31 - 1, 2**28, 2**24):
    assert decode_frame(png + struct.pack(">I", length)) is FrameError.UNDECODABLE
    assert decode_frame(png + struct.pack(">I", length) + b"IDAT") is FrameError.UNDECODABLE
# This process's peak (VmHWM, kB); getrusage's maxrss would include the parent's at the fork.
print(int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024)
"""


def test_a_png_chunk_claiming_gigabytes_is_refused_without_the_decoder_allocating_them() -> None:
    """OpenCV 4.11 allocated a chunk's declared length before reading it: 37 bytes cost 3.4 GB.
    Measured in a process of its own, whose peak memory is then this test's alone."""
    done = subprocess.run(
        [sys.executable, "-c", _DECODE_BOMBS],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    peak_mb = int(done.stdout.split()[-1])
    assert peak_mb < 400, f"decoding four tiny PNGs peaked at {peak_mb} MB"


def progressive_jpeg(width: int, height: int) -> bytes:
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.dstack([cols // 8, rows // 8, (rows // 40 + cols // 40) * 16]).astype(np.uint8)
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()


def with_last_scan_repeated(jpeg: bytes, times: int) -> bytes:
    """The JPEG with its last scan (from its SOS marker up to EOI) repeated: each repetition is
    one more full pass of the decoder over the image."""
    last_scan = jpeg[jpeg.rfind(b"\xff\xda") : -2]
    return jpeg[:-2] + last_scan * times + b"\xff\xd9"


SMALL_PROGRESSIVE = progressive_jpeg(320, 200)


@settings(FUZZ, max_examples=60)
@given(st.integers(0, 200))
def test_a_jpeg_is_decoded_up_to_the_scan_limit_and_refused_beyond_it(extra: int) -> None:
    data = with_last_scan_repeated(SMALL_PROGRESSIVE, extra)
    scans = data.count(b"\xff\xda")
    frame = decode_frame(data)
    if scans <= MAX_JPEG_SCANS:
        assert isinstance(frame, np.ndarray) and frame.shape == (200, 320, 3)
    else:
        assert frame is FrameError.UNDECODABLE


def test_a_megabyte_of_tiny_scans_is_refused_without_decoding_them() -> None:
    """80,000 scans of a full HD frame in 1 MB took the decoder 14 s; refused, it costs a count."""
    jpeg = progressive_jpeg(MAX_WIDTH, MAX_HEIGHT)
    last_scan = jpeg[jpeg.rfind(b"\xff\xda") : -2]
    bomb = with_last_scan_repeated(jpeg, (MAX_FRAME_BYTES - len(jpeg)) // len(last_scan))
    assert check_frame(bomb) == ImageHeader("jpeg", MAX_WIDTH, MAX_HEIGHT)  # within every limit

    started = time.perf_counter()
    assert decode_frame(bomb) is FrameError.UNDECODABLE
    assert time.perf_counter() - started < 1.0
