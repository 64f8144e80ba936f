"""Where image data could hide after a live session or an uploaded recording, searched byte by
byte.

Frames live in memory only, and an uploaded video only until it is analysed
(docs/architecture.md). These helpers look for a JPEG or PNG signature, a video container's
(MP4/QuickTime, WebM/Matroska, AVI), or either in base64, in every row of every table, every
Redis key, the app's folders, new temporary files and log output; each finding names where it
was. Anything at all left in the upload folder is a finding.
"""

import base64
import io
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from analysis.exports import tracks_from_npz

SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
# Video containers by their first bytes, written as patterns precise enough not to turn up by
# chance in other binary data: an MP4/QuickTime `ftyp` box with its brand, an EBML header naming
# its Matroska or WebM document type, a RIFF file of AVI.
VIDEO_SIGNATURES = {
    re.compile(rb"ftyp[a-zA-Z0-9 ]{4}"): "MP4/QuickTime",
    re.compile(rb"\x1a\x45\xdf\xa3.{0,64}?(?:webm|matroska)", re.DOTALL): "WebM/Matroska",
    re.compile(rb"RIFF.{4}AVI ", re.DOTALL): "AVI",
}
# An image in base64 starts with its signature at the start of the encoded text: "/9j/" for
# JPEG, "iVBORw0KGgo" for PNG; and data: URLs. A video's first box: "AAAA" (a small box size),
# one byte more, then "ftyp" as "Z0eX" ("AAAAIGZ0eXBpc29t" is an MP4's first 12 bytes); "GkXf"
# is EBML's magic and "UklGR" "RIFF".
BASE64_MARKS = {
    base64.b64encode(signature)[: len(signature) * 4 // 3]: f"base64 {kind}"
    for signature, kind in SIGNATURES.items()
} | {b"data:image/": "data URL", b"data:video/": "data URL"}
BASE64_VIDEO_MARKS = {
    re.compile(rb"AAAA[A-Za-z0-9+/]{2}Z0eX"): "base64 MP4/QuickTime",
    re.compile(rb"GkXfo"): "base64 WebM/Matroska",
    re.compile(rb"UklGR[A-Za-z0-9+/]{6}BVkkg"): "base64 AVI",
}
# The browser's own profile (icons, cache) belongs to the patient's machine, not to the server.
BROWSER_DIRS = ("playwright", "chromium", ".org.chromium", "pytest-of-")


def image_traces(data: bytes) -> list[str]:
    """The kinds of image or video data found in `data` (a frame, a recording, or either in
    base64)."""
    found = [kind for signature, kind in SIGNATURES.items() if signature in data]
    found += [kind for pattern, kind in VIDEO_SIGNATURES.items() if pattern.search(data)]
    found += [kind for mark, kind in BASE64_MARKS.items() if mark in data]
    return found + [kind for pattern, kind in BASE64_VIDEO_MARKS.items() if pattern.search(data)]


def outside_numbers(data: bytes) -> bytes | None:
    """For an analysed recording's kept landmarks (analysis.exports.tracks_to_npz), the bytes of
    the archive outside its compressed arrays; None for anything else. Compressed numbers can
    hold JPEG's 3-byte signature by chance (a few MB of them often do), so those are left out of
    the search once the archive has loaded as exactly that, every array of numbers, each
    compressed stream ending where its member ends. Everything else, headers and anything
    appended or slipped between members, is searched."""
    try:
        tracks_from_npz(data)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            spans = sorted(_compressed_span(data, info) for info in archive.infolist())
    except (ValueError, zipfile.BadZipFile, zlib.error, struct.error):
        return None
    rest, position = bytearray(), 0
    for start, end in spans:
        rest += data[position:start]
        position = max(position, end)
    return bytes(rest + data[position:])


def _compressed_span(data: bytes, info: zipfile.ZipInfo) -> tuple[int, int]:
    header = info.header_offset
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    start = header + 30 + name_length + extra_length
    end = start + info.compress_size
    if info.compress_type != zipfile.ZIP_DEFLATED:
        raise ValueError("tracks_to_npz compresses every array")
    stream = zlib.decompressobj(-zlib.MAX_WBITS)
    stream.decompress(data[start:end])
    if not stream.eof or stream.unused_data:
        raise ValueError("bytes after a compressed array")
    return start, end


def _searched(value: object) -> bytes:
    data = _as_bytes(value)
    if isinstance(value, bytes | bytearray | memoryview):
        rest = outside_numbers(data)
        return data if rest is None else rest
    return data


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


def database_findings() -> list[str]:
    findings = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if value is not None and (kinds := image_traces(_searched(value))):
                        findings.append(f"database table {table}: {kinds}")
    return findings


def redis_findings(url: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(url)
    findings = []
    for key in client.scan_iter():
        kind = client.type(key).decode()  # type: ignore[union-attr]  # sync client
        for value in _redis_values(client, key, kind):
            if value is not None and (kinds := image_traces(_as_bytes(value))):
                findings.append(f"redis key {key!r} ({kind}): {kinds}")
    return findings


def _redis_values(client: Any, key: bytes, kind: str) -> list[Any]:
    if kind == "string":
        return [client.get(key)]
    if kind == "list":
        return list(client.lrange(key, 0, -1))
    if kind in ("set", "zset"):
        return list(client.smembers(key) if kind == "set" else client.zrange(key, 0, -1))
    if kind == "hash":
        return [item for pair in client.hgetall(key).items() for item in pair]
    if kind == "stream":
        return [str(entry) for entry in client.xrange(key)]
    return []


def file_findings(folders: Iterable[Path], *, since: float, skip: Iterable[Path] = ()) -> list[str]:
    """Files under `folders` written since `since` (a time.time()), outside the `skip` folders.
    Other processes come and go in the temporary folder meanwhile: what vanishes is skipped."""
    findings, skipped = [], {str(path.resolve()) for path in skip}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [
                d
                for d in dirs
                if not d.startswith(BROWSER_DIRS) and str(Path(root, d).resolve()) not in skipped
            ]
            for name in files:
                path = Path(root) / name
                try:
                    if path.is_symlink() or path.stat().st_mtime < since:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue  # vanished meanwhile, or not ours to read
                if kinds := image_traces(data):
                    findings.append(f"file {path}: {kinds}")
    return findings


def text_findings(name: str, lines: Iterable[str]) -> list[str]:
    return [f"{name}: {kinds}" for line in lines if (kinds := image_traces(_as_bytes(line)))]


# The checkout itself (CI clones it into the temporary folder): its test screenshots show the
# patient's screen as the browser drew it, and are not the server's. Its var/ folder, where the
# server writes, is searched on its own (server_folders).
CHECKOUT = Path(__file__).resolve().parents[1]


def server_folders() -> list[Path]:
    folders = [Path(settings.VAR_DIR), Path(tempfile.gettempdir()), Path(settings.UPLOAD_DIR)]
    if settings.MEDIA_ROOT:
        folders.append(Path(settings.MEDIA_ROOT))
    return folders


def upload_findings() -> list[str]:
    """Whatever is left in the upload folder: a recording is deleted once analysed, also when
    the analysis failed, so any file there is one too many (whatever its content)."""
    folder = Path(settings.UPLOAD_DIR)
    if not folder.exists():
        return []
    return [f"upload folder: {path.name} left behind" for path in sorted(folder.iterdir())]
