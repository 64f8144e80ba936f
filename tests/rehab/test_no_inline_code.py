"""No template carries code or styles the Content-Security-Policy would block: no inline
<script> (json_script data blocks are not run and are fine), no on...= handler, no javascript:
URL, no style attribute or <style> element. The browser test (tests/e2e/test_csp_in_browser.py)
checks the rendered pages; this finds the mistake in the source, in every template."""

from html.parser import HTMLParser
from pathlib import Path
from typing import cast

import pytest
from django.conf import settings

# Rendered by WeasyPrint into the PDF, never served to a browser.
NOT_SERVED = {"reports/progress_report.html"}
DATA_TYPES = {"application/json", "application/ld+json"}


class InlineCodeFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        where = f"line {self.getpos()[0]}: <{tag}>"
        values = dict(attrs)
        if tag == "script" and "src" not in values and values.get("type") not in DATA_TYPES:
            self.problems.append(f"{where} inline script")
        if tag == "style":
            self.problems.append(f"{where} inline <style>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{where} event handler {name}=")
            if name == "style":
                self.problems.append(f"{where} style attribute")
            if value and value.strip().lower().replace("\t", "").startswith("javascript:"):
                self.problems.append(f"{where} javascript: URL in {name}")


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    finder.close()
    return finder.problems


def templates() -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    dirs = cast(list[Path], settings.TEMPLATES[0]["DIRS"])
    for folder in dirs:
        root = Path(folder)
        found += [(path.relative_to(root).as_posix(), path) for path in root.rglob("*.html")]
    for app in ("patients", "sessions", "reports", "analysis", "rehab", "audit"):
        root = Path(settings.BASE_DIR) / app / "templates"
        found += [(path.relative_to(root).as_posix(), path) for path in root.rglob("*.html")]
    return sorted(found)


def test_the_scan_finds_the_templates() -> None:
    names = {name for name, _ in templates()}
    assert {"base.html", "sessions/live.html", "reports/_chart_scripts.html"} <= names


@pytest.mark.parametrize(
    "name, path", [(name, path) for name, path in templates() if name not in NOT_SERVED]
)
def test_the_template_has_no_inline_code(name: str, path: Path) -> None:
    assert inline_code(path.read_text("utf-8")) == []


@pytest.mark.parametrize(
    "html",
    [
        "<script>alert(1)</script>",
        '<script type="module">import "./x.js";</script>',
        '<button onclick="go()">Go</button>',
        '<body onload="start()">',
        '<a href=" JavaScript:alert(1)">x</a>',
        '<span style="--pct: 40%"></span>',
        "<style>p { color: red }</style>",
    ],
)
def test_the_scan_catches_inline_code(html: str) -> None:
    assert inline_code(html) != []


@pytest.mark.parametrize(
    "html",
    [
        '<script src="/static/js/charts.js" type="module"></script>',
        '<script id="fig" type="application/json">{"data": []}</script>',
        '<a href="{% url \'home\' %}" {% if x %}aria-current="page"{% endif %}>Home</a>',
        '<button data-action="start">Start</button>',
    ],
)
def test_the_scan_lets_external_scripts_and_data_through(html: str) -> None:
    assert inline_code(html) == []
