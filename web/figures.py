"""Plotly figures out of the process: as JSON for plotly.js in the pages, as SVG for the PDFs.

SVG export drives the installed Chromium through kaleido. Its sync server starts once per
process (about 1.5 s) and then exports a figure in about 0.1 s.
"""

import json
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from django.conf import settings

_server_lock = threading.Lock()
_server_started = False


@dataclass(frozen=True)
class PageFigure:
    """A figure ready for `json_script`: the element ids the page's charts.js looks for."""

    name: str
    figure: dict[str, Any]

    @property
    def element_id(self) -> str:
        return f"chart-{self.name}"

    @property
    def data_id(self) -> str:
        return f"chart-{self.name}-data"


def page_figures(figures: list[tuple[str, go.Figure]]) -> list[PageFigure]:
    # Plotly's own encoder knows its types (dates, NumPy); json_script then escapes it for HTML.
    return [PageFigure(name, json.loads(fig.to_json())) for name, fig in figures]


class ChartExportError(RuntimeError):
    """The charts could not be drawn for a PDF (no Chromium, or it failed)."""


def figure_svg(fig: go.Figure, *, width: int, height: int) -> str:
    _ensure_server()
    try:
        with warnings.catch_warnings():
            # plotly passes options meant for a one-off browser; the shared server has its own
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            return fig.to_image(format="svg", width=width, height=height).decode()
    except Exception as error:  # kaleido raises bare Exceptions from the browser side
        raise ChartExportError(f"Chart export failed: {error}") from error


def _ensure_server() -> None:
    """Start kaleido's browser once per process. It waits forever when the browser is missing,
    so the path is checked first."""
    global _server_started
    with _server_lock:
        if _server_started:
            return
        browser = settings.CHROMIUM_PATH
        if not os.access(browser, os.X_OK):
            raise ChartExportError(
                f"Chromium is needed to draw the report's charts and was not found at {browser} "
                "(set CHROMIUM_PATH, or install it: apt-get install chromium)."
            )
        os.environ["BROWSER_PATH"] = browser
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
        _server_started = True
