"""Plotly figures of a patient's progress: the same figures in the pages (as JSON, drawn by
plotly.js) and in the PDF reports (as SVG). Pure: they take `analysis.progress` data.
"""

import datetime
from collections.abc import Sequence
from typing import Protocol

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.progress import Progress, RomSeries, SessionRom, Wellbeing
from analysis.quality import Grade

# One palette for the pages and the reports (the brand, good and poor colours of app.css).
INK = "#1b2733"
MUTED = "#5b6b7a"
BLUE = "#0f5e7a"
TEAL = "#1d7a46"
ORANGE = "#c2410c"
RED = "#b42318"
GREY = "#9aa5b1"
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


def _layout(fig: go.Figure, *, title: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        height=height,
        margin={"l": 56, "r": 16, "t": 48, "b": 40},
        font={"family": FONT, "color": INK, "size": 12},
        paper_bgcolor="white",
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.18, "x": 0},
        hovermode="x unified",
    )
    fig.update_xaxes(showgrid=False, linecolor=GREY, ticks="outside", tickformat="%-d %b")
    fig.update_yaxes(gridcolor="#e4e7eb", zeroline=False)
    return fig


# --- ROM over time -------------------------------------------------------------------------------


def rom_figure(sides: Sequence[RomSeries], *, simple: bool = False) -> go.Figure:
    """One exercise: per-session best and mean peak angle with the repetitions' spread, the
    target, the AAOS normal value, the baseline and the rolling-median trend; left and right
    side by side. `simple` (the patient's page) keeps the mean and the target only."""
    fig = make_subplots(
        rows=1,
        cols=len(sides),
        shared_yaxes=True,
        subplot_titles=[s.side.capitalize() for s in sides] if len(sides) > 1 else None,
        horizontal_spacing=0.06,
    )
    for col, series in enumerate(sides, start=1):
        _rom_traces(fig, series, col=col, legend=col == 1, simple=simple)
    first = sides[0]
    _layout(fig, title=f"{first.exercise}: {first.angle_label} reached (°)")
    fig.update_yaxes(title_text="degrees", col=1)
    return fig


def _rom_traces(fig: go.Figure, series: RomSeries, *, col: int, legend: bool, simple: bool) -> None:
    days = [p.started_at for p in series.points]
    means = [p.mean_deg for p in series.points]
    hover = [
        f"{p.reps} reps, {p.low_deg:.0f}–{p.high_deg:.0f}°"
        + (" · poor measurement" if p.poor else "")
        for p in series.points
    ]
    spread = {
        "type": "data",
        "symmetric": False,
        "array": [p.high_deg - p.mean_deg for p in series.points],
        "arrayminus": [p.mean_deg - p.low_deg for p in series.points],
        "color": "#8fb8c9",
        "thickness": 1,
        "width": 0,
    }
    fig.add_trace(
        go.Scatter(
            x=days,
            y=means,
            mode="markers",
            name="Mean per session" + ("" if simple else " (bar: all reps)"),
            # Hollow: every repetition of that session was graded poor (analysis.quality).
            marker={"color": BLUE, "size": 6, "symbol": [_symbol(p) for p in series.points]},
            error_y=None if simple else spread,
            customdata=hover,
            hovertemplate="mean %{y:.0f}° · %{customdata}<extra></extra>",
            legendgroup="mean",
            showlegend=legend,
        ),
        row=1,
        col=col,
    )
    if not simple:
        fig.add_trace(
            go.Scatter(
                x=days,
                y=[p.best_deg for p in series.points],
                mode="markers",
                name="Best",
                marker={"color": TEAL, "size": 6, "symbol": "triangle-up"},
                hovertemplate="best %{y:.0f}°<extra></extra>",
                legendgroup="best",
                showlegend=legend,
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=[p.started_at for p in series.trusted_points],
                y=series.trend,
                mode="lines",
                name="Trend (median of 5)",
                line={"color": INK, "width": 2},
                hovertemplate="trend %{y:.0f}°<extra></extra>",
                legendgroup="trend",
                showlegend=legend,
            ),
            row=1,
            col=col,
        )
    _reference_line(fig, series, series.target_deg, "Target", ORANGE, "dash", col, legend)
    if not simple:
        _reference_line(fig, series, series.normal_deg, "Normal (AAOS)", GREY, "dot", col, legend)
        _reference_line(fig, series, series.baseline_deg, "Baseline", MUTED, "dashdot", col, legend)


def _reference_line(
    fig: go.Figure,
    series: RomSeries,
    value: float | None,
    name: str,
    color: str,
    dash: str,
    col: int,
    legend: bool,
) -> None:
    """A horizontal line drawn as a trace (not a shape), so that it has a legend entry."""
    if value is None or not series.points:
        return
    ends = [series.points[0].started_at, series.points[-1].started_at]
    fig.add_trace(
        go.Scatter(
            x=ends,
            y=[value, value],
            mode="lines",
            name=f"{name} {value:.0f}°",
            line={"color": color, "dash": dash, "width": 1.5},
            hoverinfo="skip",
            legendgroup=name,
            showlegend=legend,
        ),
        row=1,
        col=col,
    )


# --- Adherence ------------------------------------------------------------------------------------


def adherence_figure(progress: Progress) -> go.Figure:
    """Sessions done against sessions prescribed, per week, with the streak in the title."""
    weeks = progress.weeks
    current, longest = progress.streaks
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=[w.monday for w in weeks],
            y=[w.done for w in weeks],
            name="Done",
            marker={"color": [TEAL if w.met else BLUE for w in weeks]},
            hovertemplate="week of %{x|%d %b}: %{y} done<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[w.monday for w in weeks],
            y=[w.expected for w in weeks],
            mode="markers",
            name="Prescribed",
            marker={"symbol": "line-ew-open", "size": 28, "color": ORANGE, "line": {"width": 3}},
            hovertemplate="prescribed %{y:.0f}<extra></extra>",
        )
    )
    title = f"Sessions per week · plan met {current} week{'s' * (current != 1)} in a row"
    fig = _layout(fig, title=f"{title} (longest {longest})", height=300)
    fig.update_xaxes(dtick=7 * 24 * 3600 * 1000)
    fig.update_yaxes(title_text="sessions", rangemode="tozero")
    fig.update_layout(hovermode="closest", bargap=0.35)
    return fig


# --- Similarity to the therapist's reference movement --------------------------------------------


def similarity_figure(progress: Progress) -> go.Figure | None:
    """Each session's mean similarity (0-100) to the therapist's reference movement, one line per
    exercise and side; None when no session was scored against a reference."""
    scored = [
        (series, [p for p in series.points if p.similarity is not None]) for series in progress.rom
    ]
    scored = [(series, points) for series, points in scored if points]
    if not scored:
        return None
    fig = go.Figure()
    for series, points in scored:
        fig.add_trace(
            go.Scatter(
                x=[p.started_at for p in points],
                y=[p.similarity for p in points],
                mode="lines+markers",
                name=series.title,
                hovertemplate="%{x|%d %b}: %{y:.0f} / 100<extra>" + series.title + "</extra>",
            )
        )
    fig = _layout(fig, title="Similarity to the therapist's reference movement", height=300)
    fig.update_yaxes(title_text="score (0-100)", range=[0, 100])
    return fig


# --- Pain and effort with ROM --------------------------------------------------------------------


def wellbeing_figure(wellbeing: Sequence[Wellbeing], rom: RomSeries | None) -> go.Figure:
    """Pain (NRS 0-10) and effort (Borg CR-10) after each session, with the trend of one
    exercise's ROM on a second axis: do ROM gains come with pain?"""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    days = [w.started_at for w in wellbeing]
    fig.add_trace(
        go.Scatter(
            x=days,
            y=[w.pain_nrs for w in wellbeing],
            mode="lines+markers",
            name="Pain (NRS)",
            line={"color": RED, "width": 1.5},
            marker={"size": 5},
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=days,
            y=[w.effort_borg for w in wellbeing],
            mode="lines+markers",
            name="Effort (Borg CR-10)",
            line={"color": ORANGE, "width": 1.5, "dash": "dot"},
            marker={"size": 5, "symbol": "square"},
        ),
        secondary_y=False,
    )
    if rom is not None and rom.points:
        fig.add_trace(
            go.Scatter(
                x=[p.started_at for p in rom.trusted_points],
                y=rom.trend,
                mode="lines",
                name=f"{rom.title} ROM trend (°)",
                line={"color": BLUE, "width": 2.5},
            ),
            secondary_y=True,
        )
    _layout(fig, title="Pain and effort after each session, with ROM")
    fig.update_yaxes(title_text="0–10", range=[-0.3, 10.3], dtick=2, secondary_y=False)
    fig.update_yaxes(title_text="degrees", showgrid=False, tickformat=".0f", secondary_y=True)
    return fig


# --- One session ---------------------------------------------------------------------------------


class RepTrace(Protocol):
    """What the session figure needs of a repetition (a stored row or RepetitionMetrics)."""

    @property
    def set_number(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def rom_deg(self) -> float: ...
    @property
    def trace_deg(self) -> list[float]: ...
    @property
    def form_flags(self) -> list[str]: ...
    @property
    def quality(self) -> str: ...


def session_figure(
    reps: Sequence[RepTrace], *, target_deg: float, flag_labels: dict[str, str]
) -> go.Figure:
    """One session: every repetition's angle trace overlaid (time from its start), and its ROM
    as bars with the form flags marked."""
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.55, 0.45],
        subplot_titles=["Angle during each repetition", "ROM of each repetition"],
        horizontal_spacing=0.1,
    )
    for rep in reps:
        trace = rep.trace_deg
        if len(trace) < 2:
            continue
        step = rep.duration_s / (len(trace) - 1)
        fig.add_trace(
            go.Scatter(
                x=[round(i * step, 2) for i in range(len(trace))],
                y=trace,
                mode="lines",
                name=_rep_label(rep),
                line={
                    "width": 1.5,
                    "color": ORANGE if rep.form_flags else BLUE,
                    "dash": "dot" if rep.quality == Grade.POOR else "solid",
                },
                opacity=0.6,
                showlegend=False,
                hovertemplate=f"{_rep_label(rep)}: %{{y:.0f}}° at %{{x:.1f}} s<extra></extra>",
            ),
            row=1,
            col=1,
        )
    if reps:
        fig.add_hline(
            y=target_deg, line={"color": ORANGE, "dash": "dash", "width": 1}, row=1, col=1
        )
    labels = [_rep_label(rep) for rep in reps]
    flags = [", ".join(flag_labels.get(c, c) for c in rep.form_flags) for rep in reps]
    fig.add_trace(
        go.Bar(
            x=labels,
            y=[rep.rom_deg for rep in reps],
            # Hollow bars: repetitions graded poor, whose angle is not to be trusted.
            marker={
                "color": [
                    "rgba(0,0,0,0)" if rep.quality == Grade.POOR else _rep_colour(rep)
                    for rep in reps
                ],
                "line": {"color": [_rep_colour(rep) for rep in reps], "width": 1.5},
            },
            text=["⚑" if f else "" for f in flags],
            textposition="outside",
            customdata=[
                (f or "no form flag") + (" · poor measurement" if rep.quality == Grade.POOR else "")
                for f, rep in zip(flags, reps, strict=True)
            ],
            hovertemplate="%{x}: %{y:.0f}° · %{customdata}<extra></extra>",
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    _layout(fig, title="", height=320)
    fig.update_layout(margin={"t": 36}, hovermode="closest")
    fig.update_xaxes(tickformat=None)  # seconds and repetition labels, not dates
    fig.update_xaxes(title_text="seconds", row=1, col=1)
    fig.update_yaxes(title_text="degrees", row=1, col=1)
    fig.update_xaxes(tickangle=-45, type="category", row=1, col=2)
    return fig


def rep_similarity_figure(
    reps: Sequence[RepTrace], similarity: Sequence[float | None]
) -> go.Figure | None:
    """Each repetition's similarity (0-100) to the therapist's reference movement; None when none
    was scored."""
    scored = [
        (rep, score) for rep, score in zip(reps, similarity, strict=True) if score is not None
    ]
    if not scored:
        return None
    fig = go.Figure(
        go.Bar(
            x=[_rep_label(rep) for rep, _ in scored],
            y=[score for _, score in scored],
            marker={"color": TEAL},
            hovertemplate="%{x}: %{y:.0f} / 100<extra></extra>",
        )
    )
    fig = _layout(fig, title="Like the therapist's reference movement (0-100)", height=260)
    fig.update_xaxes(tickformat=None, type="category", tickangle=-45)
    fig.update_yaxes(range=[0, 100], title_text="score")
    return fig


def _rep_colour(rep: RepTrace) -> str:
    return ORANGE if rep.form_flags else BLUE


def _symbol(point: SessionRom) -> str:
    return "circle-open" if point.poor else "circle"


def _rep_label(rep: RepTrace) -> str:
    return f"S{rep.set_number} R{rep.index}"


# --- All of a patient's figures -----------------------------------------------------------------


def progress_figures(progress: Progress, *, simple: bool = False) -> list[tuple[str, go.Figure]]:
    """The figures of a progress page or report, each with a stable id, in reading order."""
    figures = [
        (f"rom-{slug}", rom_figure(progress.sides_of(slug), simple=simple))
        for slug in progress.exercises
    ]
    figures.append(("adherence", adherence_figure(progress)))
    similarity = similarity_figure(progress)
    if similarity is not None:
        figures.append(("similarity", similarity))
    if not simple and progress.wellbeing:
        main = max(progress.rom, key=lambda s: len(s.points), default=None)
        figures.append(("wellbeing", wellbeing_figure(progress.wellbeing, main)))
    return figures


def period_label(first: datetime.date, last: datetime.date) -> str:
    return f"{first:%d %b %Y} – {last:%d %b %Y}"


# --- Two movements aligned by DTW (analysis.similarity) -------------------------------------------


def aligned_curves_figure(
    first_deg: Sequence[float],
    second_deg: Sequence[float],
    path: Sequence[tuple[int, int]],
    *,
    fps: float,
    names: tuple[str, str],
    title: str,
) -> go.Figure:
    """Two angle curves (sampled at `fps`, NaN: not seen) before and after their DTW alignment:
    the raw ones faintly against their own time, and the aligned ones solid against the
    alignment's time, the mean of the two times each step of the warping `path` pairs up."""
    fig = go.Figure()
    for values, name, colour in ((first_deg, names[0], BLUE), (second_deg, names[1], ORANGE)):
        fig.add_trace(
            go.Scatter(
                x=[round(i / fps, 3) for i in range(len(values))],
                y=list(values),
                mode="lines",
                name=f"{name} (as recorded)",
                line={"color": colour, "width": 1, "dash": "dot"},
                opacity=0.4,
                hovertemplate=f"{name}: %{{y:.0f}}° at %{{x:.2f}} s<extra></extra>",
            )
        )
    aligned_s = [round((i + j) / 2 / fps, 3) for i, j in path]
    for values, index, name, colour in (
        (first_deg, 0, names[0], BLUE),
        (second_deg, 1, names[1], ORANGE),
    ):
        fig.add_trace(
            go.Scatter(
                x=aligned_s,
                y=[values[step[index]] for step in path],
                mode="lines",
                name=f"{name} (aligned)",
                line={"color": colour, "width": 2},
                hovertemplate=f"{name}: %{{y:.0f}}°<extra></extra>",
            )
        )
    _layout(fig, title=title, height=320)
    fig.update_xaxes(tickformat=None, title_text="seconds")
    fig.update_yaxes(title_text="degrees")
    return fig
