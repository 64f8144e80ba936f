"""Where image data could hide after a live session, searched byte by byte.

Frames live in memory only (docs/architecture.md). These helpers look for a JPEG or PNG
signature, or an image in base64, in every row of every table, every Redis key, the app's
folders, new temporary files and log output; each finding names where it was.
"""

import base64
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
# An image in base64 starts with its signature at the start of the encoded text: "/9j/" for
# JPEG, "iVBORw0KGgo" for PNG; and data: URLs.
BASE64_MARKS = {
    base64.b64encode(signature)[: len(signature) * 4 // 3]: f"base64 {kind}"
    for signature, kind in SIGNATURES.items()
} | {b"data:image/": "data URL"}
# The browser's own profile (icons, cache) belongs to the patient's machine, not to the server.
BROWSER_DIRS = ("playwright", "chromium", ".org.chromium", "pytest-of-")


def image_traces(data: bytes) -> list[str]:
    found = [kind for signature, kind in SIGNATURES.items() if signature in data]
    return found + [kind for mark, kind in BASE64_MARKS.items() if mark in data]


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
                    if value is not None and (kinds := image_traces(_as_bytes(value))):
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
    folders = [Path(settings.VAR_DIR), Path(tempfile.gettempdir())]
    if settings.MEDIA_ROOT:
        folders.append(Path(settings.MEDIA_ROOT))
    return folders
