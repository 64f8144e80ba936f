"""The Plotly figures carry exactly the numbers they are given."""

import datetime
from typing import Any

from analysis.charts import adherence_figure, progress_figures, rom_figure, session_figure
from analysis.progress import Progress, Week, Wellbeing
from analysis.repetitions import RepetitionMetrics
from tests.analysis.test_progress import series


def traces_by_name(fig: Any) -> dict:
    return {trace.name.split(" ")[0]: trace for trace in fig.data}


def test_the_rom_figure_shows_mean_spread_best_trend_and_reference_lines() -> None:
    fig = rom_figure([series([70.0, 74.0, 72.0])])
    traces = traces_by_name(fig)
    mean = traces["Mean"]
    assert list(mean.y) == [70.0, 74.0, 72.0]
    assert list(mean.error_y.array) == [3.0, 3.0, 3.0]
    assert list(mean.error_y.arrayminus) == [3.0, 3.0, 3.0]
    assert list(traces["Best"].y) == [72.0, 76.0, 74.0]
    assert list(traces["Trend"].y) == [70.0, 72.0, 72.0]
    assert list(traces["Target"].y) == [90.0, 90.0]
    assert list(traces["Normal"].y) == [135.0, 135.0]
    assert list(traces["Baseline"].y) == [70.0, 70.0]
    assert fig.layout.title.text == "Heel slide: knee flexion reached (°)"


def test_left_and_right_are_drawn_side_by_side() -> None:
    left = series([60.0, 62.0])
    right = series([80.0, 82.0])
    left = left.__class__(**{**left.__dict__, "side": "left"})
    fig = rom_figure([left, right])
    assert [a.text for a in fig.layout.annotations] == ["Left", "Right"]
    means = [t for t in fig.data if t.name.startswith("Mean")]
    assert [list(t.y) for t in means] == [[60.0, 62.0], [80.0, 82.0]]
    assert {t.xaxis for t in means} == {"x", "x2"}


def test_the_patients_rom_figure_keeps_the_mean_and_the_target_only() -> None:
    fig = rom_figure([series([70.0, 74.0])], simple=True)
    assert [t.name.split(" ")[0] for t in fig.data] == ["Mean", "Target"]


def test_the_adherence_figure_shows_done_against_prescribed_and_the_streak() -> None:
    monday = datetime.date(2026, 3, 2)
    weeks = tuple(
        Week(monday + datetime.timedelta(weeks=n), expected=3.0, done=done)
        for n, done in enumerate([1, 3, 3])
    )
    progress = Progress(
        monday, monday + datetime.timedelta(days=20), rom=(), weeks=weeks, wellbeing=()
    )
    fig = adherence_figure(progress)
    done, prescribed = fig.data
    assert list(done.y) == [1, 3, 3]
    assert list(prescribed.y) == [3.0, 3.0, 3.0]
    assert fig.layout.title.text == "Sessions per week · plan met 2 weeks in a row (longest 2)"


def test_a_session_figure_overlays_every_repetition_and_marks_form_flags() -> None:
    reps = [
        RepetitionMetrics(
            set_number=1,
            index=n,
            side="right",
            start_s=0,
            end_s=2,
            min_deg=0,
            max_deg=80,
            rom_deg=78.0 + n,
            duration_s=2.0,
            peak_velocity_dps=90,
            form_flags=["trunk_lean"] if n == 2 else [],
            trace_deg=[0.0, 40.0, 80.0, 40.0, 0.0],
        )
        for n in (1, 2)
    ]
    fig = session_figure(reps, target_deg=90.0, flag_labels={"trunk_lean": "Trunk leans"})
    first, second, bars = fig.data
    assert list(first.x) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert list(bars.x) == ["S1 R1", "S1 R2"]
    assert list(bars.y) == [79.0, 80.0]
    assert list(bars.customdata) == ["no form flag", "Trunk leans"]
    assert list(bars.text) == ["", "⚑"]


def test_a_progress_page_has_one_rom_figure_per_exercise_then_adherence_then_wellbeing() -> None:
    rom = series([70.0, 72.0])
    pain = (Wellbeing("s0", rom.points[0].started_at, 3, 4.0),)
    progress = Progress(
        rom.points[0].started_at.date(),
        rom.points[-1].started_at.date(),
        rom=(rom,),
        weeks=(),
        wellbeing=pain,
    )
    assert [name for name, _ in progress_figures(progress)] == [
        "rom-heel_slide",
        "adherence",
        "wellbeing",
    ]
    assert [name for name, _ in progress_figures(progress, simple=True)] == [
        "rom-heel_slide",
        "adherence",
    ]
