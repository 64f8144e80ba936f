"""The frame decoder refuses anything it cannot prove small and well-formed, and never raises."""

import os
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.pose.frames import (
    MAX_FRAME_BYTES,
    MAX_HEIGHT,
    MAX_WIDTH,
    FrameError,
    ImageHeader,
    decode_frame,
    read_header,
)

PHOTO = Path("/work/shared/data/mediapipe_reference/pose.jpg")  # a real 1000x667 progressive JPEG
PHOTO_SHAPE = (667, 1000, 3)
REPO_ROOT = Path(__file__).resolve().parents[2]

SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def photo_bytes() -> bytes:
    return PHOTO.read_bytes()


def photo_pixels() -> np.ndarray:
    pixels = cv2.imdecode(np.frombuffer(photo_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None
    return pixels


def encode(extension: str, pixels: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(extension, pixels)
    assert ok
    return buffer.tobytes()


def baseline_jpeg() -> bytes:
    """The photo re-encoded by OpenCV: a baseline JPEG, so its size sits in an SOF0 segment."""
    return encode(".jpg", photo_pixels())


def segments(jpeg: bytes) -> Iterator[tuple[int, int, int]]:
    """(offset of the FF byte, marker, length) of each segment up to and including SOS.

    Deliberately simpler than the module's walker (no fill bytes, no standalone markers): it only
    has to understand the well-formed files these tests start from.
    """
    pos = 2
    while pos + 4 <= len(jpeg):
        assert jpeg[pos] == 0xFF
        marker = jpeg[pos + 1]
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        yield pos, marker, length
        if marker == 0xDA:
            return
        pos += 2 + length


def sof_offset(jpeg: bytes) -> int:
    return next(pos for pos, marker, _ in segments(jpeg) if marker in SOF_MARKERS)


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same file with the SOF height and width fields overwritten."""
    pos = sof_offset(jpeg)
    patched = bytearray(jpeg)
    # FF Cx, length(2), precision(1), height(2), width(2)
    patched[pos + 5 : pos + 7] = height.to_bytes(2, "big")
    patched[pos + 7 : pos + 9] = width.to_bytes(2, "big")
    return bytes(patched)


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """The same file with the IHDR width and height overwritten (its CRC left stale)."""
    return png[:16] + struct.pack(">II", width, height) + png[24:]


def test_the_real_photo_decodes_to_its_full_bgr_frame() -> None:
    frame = decode_frame(photo_bytes())

    assert isinstance(frame, np.ndarray)
    assert frame.shape == PHOTO_SHAPE
    assert frame.dtype == np.uint8
    assert np.array_equal(frame, photo_pixels())


def test_the_header_of_the_real_photo_gives_its_format_and_size() -> None:
    assert read_header(photo_bytes()) == ImageHeader(format="jpeg", width=1000, height=667)


def test_a_baseline_jpeg_reencoding_of_the_photo_decodes() -> None:
    frame = decode_frame(baseline_jpeg())

    assert isinstance(frame, np.ndarray)
    assert frame.shape == PHOTO_SHAPE


def test_a_png_of_the_photo_decodes_to_exactly_the_encoded_pixels() -> None:
    png = encode(".png", photo_pixels())

    assert read_header(png) == ImageHeader(format="png", width=1000, height=667)
    frame = decode_frame(png)
    assert isinstance(frame, np.ndarray)
    assert np.array_equal(frame, photo_pixels())


def test_grey_and_transparent_images_come_back_as_three_channel_bgr() -> None:
    grey = cv2.cvtColor(photo_pixels(), cv2.COLOR_BGR2GRAY)
    with_alpha = cv2.cvtColor(photo_pixels(), cv2.COLOR_BGR2BGRA)

    for data in (encode(".jpg", grey), encode(".png", grey), encode(".png", with_alpha)):
        frame = decode_frame(data)
        assert isinstance(frame, np.ndarray)
        assert frame.shape == PHOTO_SHAPE
        assert frame.dtype == np.uint8


def test_a_photo_rotated_by_its_exif_orientation_is_accepted_with_its_sides_swapped() -> None:
    # A minimal EXIF APP1 segment: big-endian TIFF, one IFD entry, Orientation = 6 (rotate 90 CW).
    ifd_entry = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + ifd_entry + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    jpeg = baseline_jpeg()
    rotated = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]

    frame = decode_frame(rotated)

    assert isinstance(frame, np.ndarray)
    assert frame.shape == (1000, 667, 3)


def test_empty_bytes_are_refused_as_empty() -> None:
    assert decode_frame(b"") is FrameError.EMPTY
    assert read_header(b"") is FrameError.EMPTY


def test_random_bytes_are_refused_without_raising() -> None:
    rng = random.Random(1234)
    for size in (1, 2, 3, 7, 8, 23, 24, 100, 4096, 200_000):
        data = rng.randbytes(size)
        assert isinstance(decode_frame(data), FrameError)
        assert isinstance(decode_frame(b"\xff\xd8\xff" + data), FrameError)
        assert isinstance(decode_frame(b"\x89PNG\r\n\x1a\n" + data), FrameError)
    assert isinstance(decode_frame(os.urandom(10_000)), FrameError)


def test_a_jpeg_cut_in_half_has_a_valid_header_but_is_undecodable() -> None:
    data = photo_bytes()

    assert decode_frame(data[: len(data) // 2]) is FrameError.UNDECODABLE


def test_a_jpeg_cut_inside_its_header_is_truncated() -> None:
    data = photo_bytes()
    sof = sof_offset(data)

    assert decode_frame(data[:20]) is FrameError.TRUNCATED
    # Cut inside the SOF segment, before its width field is complete.
    assert decode_frame(data[: sof + 8]) is FrameError.TRUNCATED


def test_a_jpeg_of_only_the_start_of_image_marker_is_truncated() -> None:
    assert decode_frame(b"\xff\xd8") is FrameError.TRUNCATED
    assert decode_frame(b"\xff\xd8\xff") is FrameError.TRUNCATED
    assert decode_frame(b"\xff") is FrameError.TRUNCATED


def test_a_jpeg_that_ends_or_starts_its_scan_before_any_size_is_truncated() -> None:
    assert decode_frame(b"\xff\xd8\xff\xd9") is FrameError.TRUNCATED
    data = photo_bytes()
    without_sof = b"".join(
        data[pos : pos + 2 + length]
        for pos, marker, length in segments(data)
        if marker not in SOF_MARKERS
    )
    assert decode_frame(data[:2] + without_sof + data[-2:]) is FrameError.TRUNCATED


def test_a_jpeg_segment_length_below_two_is_truncated_not_an_endless_loop() -> None:
    assert decode_frame(b"\xff\xd8\xff\xe0\x00\x00" + bytes(100)) is FrameError.TRUNCATED
    assert decode_frame(b"\xff\xd8\xff\xe0\x00\x01" + bytes(100)) is FrameError.TRUNCATED


def test_jpeg_fill_bytes_and_standalone_markers_before_the_size_are_skipped() -> None:
    jpeg = baseline_jpeg()
    # Fill bytes before a marker, then RST0, TEM and a repeated SOI, none of which have a length.
    padded = jpeg[:2] + b"\xff\xff\xff\xd0\xff\x01\xff\xd8" + jpeg[2:]

    assert read_header(padded) == ImageHeader(format="jpeg", width=1000, height=667)


def test_a_png_cut_inside_its_header_is_truncated() -> None:
    png = encode(".png", photo_pixels())

    assert decode_frame(png[:4]) is FrameError.TRUNCATED
    assert decode_frame(png[:8]) is FrameError.TRUNCATED
    assert decode_frame(png[:23]) is FrameError.TRUNCATED
    assert decode_frame(png[: len(png) // 2]) is FrameError.UNDECODABLE


def test_a_png_whose_first_chunk_is_not_ihdr_is_truncated() -> None:
    png = encode(".png", photo_pixels())

    assert decode_frame(png[:12] + b"IDAT" + png[16:]) is FrameError.TRUNCATED


def test_it_refuses_a_header_claiming_30000_by_30000_pixels() -> None:
    # Both the real progressive photo (SOF2) and its baseline re-encoding (SOF0).
    for jpeg in (photo_bytes(), baseline_jpeg()):
        huge = with_jpeg_size(jpeg, 30000, 30000)
        assert len(huge) < MAX_FRAME_BYTES
        assert read_header(huge) == ImageHeader(format="jpeg", width=30000, height=30000)
        assert decode_frame(huge) is FrameError.DIMENSIONS


def test_it_refuses_a_png_header_claiming_30000_by_30000_pixels() -> None:
    huge = with_png_size(encode(".png", photo_pixels()), 30000, 30000)

    assert read_header(huge) == ImageHeader(format="png", width=30000, height=30000)
    assert decode_frame(huge) is FrameError.DIMENSIONS


def test_a_zero_width_or_height_is_refused_as_dimensions() -> None:
    jpeg = photo_bytes()
    png = encode(".png", photo_pixels())

    assert decode_frame(with_jpeg_size(jpeg, 0, 667)) is FrameError.DIMENSIONS
    assert decode_frame(with_jpeg_size(jpeg, 1000, 0)) is FrameError.DIMENSIONS
    assert decode_frame(with_png_size(png, 0, 667)) is FrameError.DIMENSIONS
    assert decode_frame(with_png_size(png, 1000, 0)) is FrameError.DIMENSIONS


def test_a_png_width_beyond_32_bits_signed_is_refused_as_dimensions() -> None:
    huge = with_png_size(encode(".png", photo_pixels()), 0xFFFFFFFF, 1)

    assert decode_frame(huge) is FrameError.DIMENSIONS


def test_a_png_whose_patched_header_fails_its_checksum_is_undecodable() -> None:
    # Within the limits, so it reaches the decoder, which rejects the stale IHDR CRC.
    assert decode_frame(with_png_size(encode(".png", photo_pixels()), 10, 10)) is (
        FrameError.UNDECODABLE
    )


def test_a_decoded_image_of_another_size_than_its_header_is_undecodable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stand-in for a decoder that followed something other than the header that was checked.
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: np.zeros((10, 10, 3), np.uint8))

    assert decode_frame(photo_bytes()) is FrameError.UNDECODABLE


def test_an_opencv_error_while_decoding_is_returned_as_undecodable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing_imdecode(buf: np.ndarray, flags: int) -> np.ndarray:
        raise cv2.error("Insufficient memory")

    monkeypatch.setattr(cv2, "imdecode", failing_imdecode)

    assert decode_frame(photo_bytes()) is FrameError.UNDECODABLE


def test_a_message_over_the_byte_limit_is_refused_before_looking_at_it() -> None:
    oversize = b"\xff\xd8\xff" + bytes(MAX_FRAME_BYTES - 2)

    assert len(oversize) == MAX_FRAME_BYTES + 1
    assert decode_frame(oversize) is FrameError.TOO_LARGE


def test_a_valid_jpeg_padded_to_exactly_the_byte_limit_is_accepted() -> None:
    jpeg = photo_bytes()
    padded = jpeg + bytes(MAX_FRAME_BYTES - len(jpeg))  # decoders ignore bytes after EOI

    frame = decode_frame(padded)

    assert isinstance(frame, np.ndarray)
    assert frame.shape == PHOTO_SHAPE


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GIF89a" + struct.pack("<HH", 1000, 667) + bytes(100), id="gif"),
        pytest.param(b"GIF87a" + bytes(100), id="gif87"),
        pytest.param(encode(".bmp", cv2.resize(photo_pixels(), (200, 133))), id="bmp"),
        pytest.param(encode(".webp", photo_pixels()), id="webp"),
        pytest.param(encode(".tiff", photo_pixels()), id="tiff"),
        pytest.param(b"\xff\xd9\xff" + bytes(100), id="jpeg-eoi-first"),
    ],
)
def test_formats_other_than_jpeg_and_png_are_refused_as_unknown(data: bytes) -> None:
    assert decode_frame(data) is FrameError.UNKNOWN_FORMAT


def test_a_valid_jpeg_header_followed_by_garbage_pixels_never_raises() -> None:
    jpeg = baseline_jpeg()
    sos, _, length = next(s for s in segments(jpeg) if s[1] == 0xDA)
    header = jpeg[: sos + 2 + length]
    rng = random.Random(99)

    for _ in range(20):
        garbage = rng.randbytes(rng.randrange(1, 60_000))
        # Without 0xFF the garbage holds no markers: plain wrong entropy-coded data, then EOI.
        scan_only = garbage.replace(b"\xff", b"\x00") + b"\xff\xd9"
        for data in (header + scan_only, header + garbage):
            frame = decode_frame(data)
            if isinstance(frame, np.ndarray):
                assert frame.shape == PHOTO_SHAPE
            else:
                assert frame is FrameError.UNDECODABLE


@pytest.mark.parametrize("extension", [".jpg", ".png"])
def test_a_full_hd_frame_is_accepted_and_one_pixel_wider_or_taller_is_refused(
    extension: str,
) -> None:
    def frame_of(width: int, height: int) -> bytes:
        # A smooth synthetic picture: a full HD PNG of the photo would be over the byte limit.
        rows, cols = np.mgrid[0:height, 0:width]
        pixels = np.dstack([cols // 8, rows // 8, (rows // 120 + cols // 120) * 16]).astype(
            np.uint8
        )
        return encode(extension, pixels)

    frame = decode_frame(frame_of(MAX_WIDTH, MAX_HEIGHT))
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (MAX_HEIGHT, MAX_WIDTH, 3)

    assert decode_frame(frame_of(MAX_WIDTH + 1, MAX_HEIGHT)) is FrameError.DIMENSIONS
    assert decode_frame(frame_of(MAX_WIDTH, MAX_HEIGHT + 1)) is FrameError.DIMENSIONS
    # Same pixel count as the limit but portrait: each side is limited, not only the area.
    assert decode_frame(frame_of(MAX_HEIGHT, MAX_WIDTH)) is FrameError.DIMENSIONS


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random corruption: flipped bytes, a cut, or a spliced-in, removed or repeated run."""
    buf = bytearray(data)
    # Half the mutations land in the first kilobyte, where the header walker does its work.
    span = 1024 if rng.random() < 0.5 else len(buf)
    kind = rng.randrange(5)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(span)] = rng.randrange(256)
    elif kind == 1:
        del buf[rng.randrange(span) :]
    elif kind == 2:
        start = rng.randrange(len(buf))
        run = data[start : start + rng.randint(1, 2048)]
        at = rng.randrange(span)
        buf[at:at] = run
    elif kind == 3:
        start = rng.randrange(span)
        del buf[start : start + rng.randint(1, 512)]
    else:
        at = rng.randrange(span)
        buf[at:at] = rng.choice([b"\xff", b"\xff\xd8", b"\xff\xd9", b"\xff\xda", b"\x00\x00"]) * (
            rng.randint(1, 20)
        )
    return bytes(buf)


def test_two_thousand_random_mutations_of_the_real_photo_never_raise() -> None:
    rng = random.Random(20240521)
    original = photo_bytes()
    outcomes: set[str] = set()

    for _ in range(2000):
        data = mutate(original, rng)
        header = read_header(data)
        assert isinstance(header, ImageHeader | FrameError)
        frame = decode_frame(data)
        if isinstance(frame, np.ndarray):
            assert frame.dtype == np.uint8
            assert frame.ndim == 3
            assert frame.shape[2] == 3
            assert frame.shape[0] * frame.shape[1] <= MAX_WIDTH * MAX_HEIGHT
            outcomes.add("decoded")
        else:
            assert isinstance(frame, FrameError)
            outcomes.add(frame.value)

    # The corpus really exercised both the refusals and the decoder.
    assert {"decoded", "truncated", "undecodable"} <= outcomes


def test_every_error_has_a_stable_code_and_a_one_sentence_message() -> None:
    assert [error.value for error in FrameError] == [
        "empty",
        "too_large",
        "unknown_format",
        "truncated",
        "dimensions",
        "undecodable",
    ]
    for error in FrameError:
        assert error == error.value
        assert error.message.endswith(".")
        assert error.message.count(". ") == 0
        assert error.message[0].isupper()
    assert "1920x1080" in FrameError.DIMENSIONS.message


def test_opencv_itself_refuses_oversized_images_whichever_analysis_module_loads_it() -> None:
    # The env var only works if it is set before OpenCV loads, so check it in a fresh interpreter
    # where mediapipe (through the engine) is the first to import cv2.
    script = (
        "import analysis.pose.engine, analysis.pose.frames, cv2, numpy as np\n"
        "assert cv2.__name__ and analysis.pose.frames.MAX_WIDTH * analysis.pose.frames.MAX_HEIGHT"
        " == int(__import__('os').environ['OPENCV_IO_MAX_IMAGE_PIXELS'])\n"
        "png = cv2.imencode('.png', np.zeros((1081, 1921, 3), np.uint8))[1]\n"
        "try:\n"
        "    image = cv2.imdecode(png, cv2.IMREAD_COLOR)\n"
        "except cv2.error:\n"
        "    image = None\n"
        "print('refused' if image is None else 'decoded')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == "refused"
