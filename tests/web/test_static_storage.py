"""The production storage of static files: the live page's ES modules import each other by their
hashed, long-cached names once collected, so one deploy's entry never runs another's modules."""

import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "web.storage.CompressedManifestModulesStorage"},
}
# `import ... from "./x.js"` and `import("./x.js")`: every relative module specifier.
SPECIFIER = re.compile(r"""(?:from\s+|import\s*\(\s*)["'](\.{1,2}/[^"']+\.js)["']""")


def test_collected_live_modules_import_only_hashed_names(tmp_path: Path) -> None:
    # Compression skipped (every extension): it takes a minute over plotly.js and is not tested.
    skip = {
        path.suffix.lstrip(".")
        for path in Path(__file__).resolve().parents[2].glob("static/**/*.*")
    }
    with override_settings(
        STATIC_ROOT=tmp_path,
        STORAGES=PRODUCTION_STORAGES,
        WHITENOISE_SKIP_COMPRESS_EXTENSIONS=sorted(skip | {"css", "js", "svg", "map", "txt"}),
    ):
        call_command("collectstatic", "--noinput", verbosity=0)
    paths = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    live = [name for name in paths if name.startswith("js/live")]
    assert "js/live-session.js" in live and "js/live/main.js" in live
    seen = 0
    for name in live:
        hashed = tmp_path / paths[name]
        for specifier in SPECIFIER.findall(hashed.read_text()):
            target = (hashed.parent / specifier).resolve()
            assert target.exists(), (name, specifier)
            assert target.relative_to(tmp_path.resolve()).as_posix() in paths.values(), specifier
            seen += 1
    assert seen >= len(live) - 1  # every module but the leaves is imported by another


@pytest.mark.parametrize("name", ["js/live-session.js", "js/live/main.js"])
def test_an_unhashed_import_would_be_caught(name: str) -> None:
    source = (Path(__file__).resolve().parents[2] / "static" / name).read_text()
    assert SPECIFIER.search(source), f"{name} has no relative import for the test to check"
