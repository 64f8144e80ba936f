"""Guarded decoding of webcam frames and images that arrive as bytes from untrusted clients.

A compressed image says how large it is in its header, and the decoder allocates that much before
reading a single pixel: a 360 KB JPEG claiming 30000x30000 pixels costs gigabytes of memory.
So the header is parsed here first, with plain byte reads, and ``cv2.imdecode`` only ever sees
data whose declared size is within the limits.

Usage::

    frame = decode_frame(message)   # BGR uint8 array (H, W, 3), or a FrameError
    if isinstance(frame, FrameError):
        return reply_error(frame.value, frame.message)
"""

from dataclasses import dataclass
from enum import StrEnum

import cv2  # OpenCV's own pixel limit is set in analysis/__init__.py, before cv2 loads
import numpy as np

MAX_WIDTH = 1920
MAX_HEIGHT = 1080
MAX_FRAME_BYTES = 1_000_000  # larger messages are refused before looking at them
# A progressive JPEG is decoded scan by scan over the whole image: a 1 MB frame of 80,000 tiny
# scans took 14 s of a pose worker's CPU at 1920x1080 (found while fuzzing). Browsers' and
# OpenCV's JPEGs have 1 to about 12 scans.
MAX_JPEG_SCANS = 64


class FrameError(StrEnum):
    """Why a frame was refused. Returned, never raised: the value is a stable code for clients."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    UNKNOWN_FORMAT = "unknown_format"
    TRUNCATED = "truncated"
    DIMENSIONS = "dimensions"
    UNDECODABLE = "undecodable"

    @property
    def message(self) -> str:
        """One human-readable sentence for the code."""
        return _MESSAGES[self]


_MESSAGES: dict[FrameError, str] = {
    FrameError.EMPTY: "Frame is empty.",
    FrameError.TOO_LARGE: f"Frame is larger than {MAX_FRAME_BYTES:,} bytes.",
    FrameError.UNKNOWN_FORMAT: "Frame is neither a JPEG nor a PNG image.",
    FrameError.TRUNCATED: "Frame header is incomplete or malformed; its size could not be read.",
    FrameError.DIMENSIONS: (
        f"Frame has a zero side or is larger than {MAX_WIDTH}x{MAX_HEIGHT} pixels; "
        f"at most {MAX_WIDTH}x{MAX_HEIGHT} is accepted."
    ),
    FrameError.UNDECODABLE: "Frame header is valid but the image data could not be decoded.",
}


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "jpeg" or "png"
    width: int
    height: int


_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Start-of-frame markers carry the image size. C4 (DHT), C8 (reserved) and CC (DAC) share the range
# but are ordinary segments.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field after them: TEM, RST0-7 and SOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})
_JPEG_SOS = 0xDA
_JPEG_EOI = 0xD9


def read_header(data: bytes) -> ImageHeader | FrameError:
    """Format and size from the header bytes only, without decoding pixels.

    Reports the size the header claims, however large; ``decode_frame`` applies the limits.
    Never raises for any bytes input.
    """
    if not data:
        return FrameError.EMPTY
    if data.startswith(_JPEG_MAGIC):
        return _read_jpeg_header(data)
    if data.startswith(_PNG_MAGIC):
        return _read_png_header(data)
    # A cut-off signature is a truncated image, not a foreign format.
    if _JPEG_MAGIC.startswith(data) or _PNG_MAGIC.startswith(data):
        return FrameError.TRUNCATED
    return FrameError.UNKNOWN_FORMAT


def _read_jpeg_header(data: bytes) -> ImageHeader | FrameError:
    # Walk the segments after SOI: every segment is FF <marker> <length: 2 bytes, includes itself>
    # <payload>. Each step moves forward by at least two bytes, so the walk ends on any input.
    size = len(data)
    pos = 2
    while pos < size:
        if data[pos] != 0xFF:
            # Not a marker where one must be: the header is malformed, there is no size to trust.
            return FrameError.TRUNCATED
        # Any number of 0xFF fill bytes may precede the marker code.
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            return FrameError.TRUNCATED
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (_JPEG_SOS, _JPEG_EOI):
            # Pixel data or the end of the image before any size: nothing to check it against.
            return FrameError.TRUNCATED
        if marker == 0x00:
            # A stuffed zero belongs inside scan data, never between header segments.
            return FrameError.TRUNCATED
        if pos + 2 > size:
            return FrameError.TRUNCATED
        length = int.from_bytes(data[pos : pos + 2], "big")
        if marker in _JPEG_SOF:
            # length(2) precision(1) height(2) width(2) components(1): at least 8 bytes.
            if length < 8 or pos + 7 > size:
                return FrameError.TRUNCATED
            height = int.from_bytes(data[pos + 3 : pos + 5], "big")
            width = int.from_bytes(data[pos + 5 : pos + 7], "big")
            return ImageHeader(format="jpeg", width=width, height=height)
        if length < 2:
            # The length counts its own two bytes; less is malformed.
            return FrameError.TRUNCATED
        pos += length
    return FrameError.TRUNCATED


def _read_png_header(data: bytes) -> ImageHeader | FrameError:
    # The PNG signature is always followed by IHDR: length(4) type(4) width(4) height(4) ...
    if len(data) < 24 or data[12:16] != b"IHDR":
        return FrameError.TRUNCATED
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return ImageHeader(format="png", width=width, height=height)


def _costs_more_than_its_size(data: bytes, header: ImageHeader) -> bool:
    """Frames within every limit that would still cost the decoder far more than their pixels.
    Checked in the pose worker, just before decoding (a full scan of the bytes: about 4 ms per
    MB, which the consumer's event loop is spared)."""
    if header.format == "png":
        return not _png_chunks_fit(data)
    # Entropy-coded data never holds FF DA (an FF there is followed by 00 or a restart marker), so
    # this counts the scans, plus any FF DA inside metadata segments.
    return data.count(b"\xff\xda") > MAX_JPEG_SCANS


def _png_chunks_fit(data: bytes) -> bool:
    """Whether every chunk up to IEND declares no more bytes than the data holds.

    OpenCV's PNG reader (4.11) allocates a chunk's declared length before reading it: a 37-byte
    PNG whose second chunk claims 3.5 GB cost 3.4 GB of memory and 3.6 s (found by fuzzing,
    tests/analysis/test_frames_fuzz.py). Within the data, a chunk costs at most the frame's size.
    Each step moves forward by at least 12 bytes, so the walk ends on any input.
    """
    pos, size = 8, len(data)
    while pos + 8 <= size:
        length = int.from_bytes(data[pos : pos + 4], "big")
        if pos + 12 + length > size:  # length(4) type(4) data crc(4)
            return False
        if data[pos + 4 : pos + 8] == b"IEND":
            return True  # what follows IEND is never read
        pos += 12 + length
    return pos == size


def check_frame(data: bytes) -> ImageHeader | FrameError:
    """The checks that need no decoding (size in bytes, format, claimed size in pixels): the live
    consumer runs them before a frame goes to a pose worker. Never raises for any bytes input."""
    if not data:
        return FrameError.EMPTY
    if len(data) > MAX_FRAME_BYTES:
        return FrameError.TOO_LARGE
    header = read_header(data)
    if isinstance(header, FrameError):
        return header
    if not (0 < header.width <= MAX_WIDTH and 0 < header.height <= MAX_HEIGHT):
        return FrameError.DIMENSIONS
    return header


def decode_frame(data: bytes) -> np.ndarray | FrameError:
    """BGR uint8 array of shape (H, W, 3), or the reason it was refused. Never raises for any bytes
    input."""
    header = check_frame(data)
    if isinstance(header, FrameError):
        return header
    if _costs_more_than_its_size(data, header):
        return FrameError.UNDECODABLE
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return FrameError.UNDECODABLE
    if image is None:
        return FrameError.UNDECODABLE
    # The decoder must have read the image the header described; anything else means the header
    # was not what the decoder followed (and the size check above would not have covered it).
    # IMREAD_COLOR applies the EXIF orientation, so a rotated photo comes back with its sides
    # swapped: same pixel count, still within what was checked.
    expected = {(header.height, header.width, 3), (header.width, header.height, 3)}
    if image.dtype != np.uint8 or tuple(image.shape) not in expected:
        return FrameError.UNDECODABLE
    return image
