"""The progress numbers behind charts and reports, on hand-made data with exact answers."""

import datetime

from analysis.progress import (
    PRINT_MAX_POINTS,
    Progress,
    RomSeries,
    SessionRom,
    Week,
    Wellbeing,
    measure_of,
    mondays,
    rolling_median,
    week_streaks,
)

MONDAY = datetime.datetime(2026, 3, 2, 9, 0)


def point(day: int, mean: float, *, best: float | None = None, flags: dict | None = None):
    best = mean + 2 if best is None else best
    return SessionRom(
        session_id=f"s{day}",
        started_at=MONDAY + datetime.timedelta(days=day),
        best_deg=best,
        mean_deg=mean,
        low_deg=mean - 3,
        high_deg=best,
        reps=10,
        target_deg=90.0,
        flags=flags or {},
    )


def series(means: list[float], *, direction: int = 1, target: float = 90.0) -> RomSeries:
    points = tuple(
        SessionRom(
            session_id=f"s{day}",
            started_at=MONDAY + datetime.timedelta(days=day),
            best_deg=mean + 2 * direction,
            mean_deg=mean,
            low_deg=mean - 3,
            high_deg=mean + 3,
            reps=10,
            target_deg=target,
        )
        for day, mean in enumerate(means)
    )
    return RomSeries(
        slug="heel_slide",
        exercise="Heel slide",
        angle_label="knee flexion",
        side="right",
        direction=direction,
        normal_deg=135.0 if direction > 0 else 0.0,
        baseline_deg=means[0] if means else None,
        points=points,
    )


def test_the_trend_is_a_trailing_median_of_five() -> None:
    assert rolling_median([1, 5, 3, 9, 7, 2, 8]) == [1, 3, 3, 4, 5, 5, 7]
    assert rolling_median([1, 5, 3, 9], window=2) == [1, 3, 4, 6]
    assert rolling_median([]) == []


def test_one_bad_day_does_not_move_the_trend() -> None:
    assert rolling_median([80, 81, 82, 20, 83])[-1] == 81


def test_a_week_is_met_when_the_rounded_prescription_is_done() -> None:
    monday = datetime.date(2026, 3, 2)
    assert Week(monday, expected=2.57, done=3).met
    assert not Week(monday, expected=2.57, done=2).met
    assert not Week(monday, expected=0.0, done=4).met  # nothing prescribed: no streak either


def test_streaks_count_weeks_in_a_row_and_the_running_week_does_not_break_them() -> None:
    monday = datetime.date(2026, 1, 5)
    pattern = [3, 3, 0, 3, 3, 3, 1]  # done per week, 3 prescribed; the last week is under way
    weeks = [
        Week(monday + datetime.timedelta(weeks=n), expected=3.0, done=done)
        for n, done in enumerate(pattern)
    ]
    assert week_streaks(weeks) == (3, 3)
    assert week_streaks(weeks[:-1]) == (3, 3)
    assert week_streaks(weeks[:3]) == (2, 2)  # the unfinished last week does not count yet
    assert week_streaks([weeks[0], weeks[2], weeks[6]]) == (0, 1)  # two weeks missed at the end
    assert week_streaks([]) == (0, 0)


def test_mondays_cover_every_week_of_the_period() -> None:
    assert mondays(datetime.date(2026, 3, 4), datetime.date(2026, 3, 16)) == [
        datetime.date(2026, 3, 2),
        datetime.date(2026, 3, 9),
        datetime.date(2026, 3, 16),
    ]


def test_shortfall_follows_the_direction_of_the_exercise() -> None:
    assert series([80.0]).shortfall_deg(84.0) == 6.0
    assert series([80.0]).shortfall_deg(95.0) == -5.0
    extension = series([12.0], direction=-1, target=0.0)
    assert extension.shortfall_deg(5.0) == 5.0


def test_a_measure_sums_up_the_period_against_the_target() -> None:
    measure = measure_of(series([70, 72, 74, 80, 84, 86, 88]))
    assert (measure.first_deg, measure.latest_deg) == (70, 84)
    assert measure.change_deg == 14
    assert measure.best_deg == 90  # 88 + 2
    assert measure.reps == 70
    assert measure.status == "Progressing"
    assert measure_of(series([88, 88, 89, 89, 89])).status == "Met"
    assert measure_of(series([60, 61, 60, 61, 61])).status == "Not met"


def test_a_measure_of_an_extension_exercise_improves_downwards() -> None:
    measure = measure_of(series([14, 12, 10, 8, 6, 4, 2], direction=-1, target=0.0))
    assert measure.change_deg == 8  # trend from 14 to 6
    assert measure.best_deg == 0  # the lowest best: 2 - 2
    assert measure.status == "Progressing"


def test_a_long_history_is_printed_one_point_per_week() -> None:
    days = PRINT_MAX_POINTS + 5
    points = tuple(
        point(day, mean=60.0 + (day % 7), flags={"trunk_lean": 1}) for day in range(days)
    )
    rom = RomSeries(
        slug="squat",
        exercise="Squat",
        angle_label="knee flexion",
        side="both",
        direction=1,
        normal_deg=135.0,
        baseline_deg=60.0,
        points=points,
    )
    pain = tuple(
        Wellbeing(f"s{day}", MONDAY + datetime.timedelta(days=day), day % 2, 3.0)
        for day in range(days)
    )
    progress = Progress(MONDAY.date(), MONDAY.date(), rom=(rom,), weeks=(), wellbeing=pain)
    printed = progress.for_print()
    weekly = printed.rom[0].points
    assert len(weekly) == 18  # 125 days from a Monday: 17 full weeks and 6 days
    first = weekly[0]
    assert first.started_at == datetime.datetime(2026, 3, 2, 12, 0)
    assert (first.mean_deg, first.best_deg, first.low_deg, first.high_deg) == (
        63.0,
        68.0,
        57.0,
        68.0,
    )
    assert (first.reps, first.flags) == (70, {"trunk_lean": 7})
    assert printed.wellbeing[0].pain_nrs == round(3 / 7, 1)
    assert len(printed.wellbeing) == 18


def test_a_short_history_is_printed_as_it_is() -> None:
    progress = Progress(
        MONDAY.date(), MONDAY.date(), rom=(series([70, 71, 72]),), weeks=(), wellbeing=()
    )
    assert progress.for_print() == progress
