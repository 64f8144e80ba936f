"""The alert rules on hand-built progress: exact messages and numbers, and the quiet side of each.

TODAY is Sunday 16 Nov 2025, so the 7 days ending today are one calendar week (Mon 10 - Sun 16).
"""

import datetime
from collections.abc import Sequence

import pytest

from analysis import alerts
from analysis.alerts import Finding, evaluate
from analysis.progress import Progress, RomSeries, SessionRom, Week, Wellbeing

TODAY = datetime.date(2025, 11, 16)
UTC = datetime.UTC
SQUAT_LABELS = {
    "knee_valgus": "Knee collapses inwards",
    "trunk_lean": "Trunk leans too far forward",
}


def at(days_ago: int, hour: int = 10) -> datetime.datetime:
    day = TODAY - datetime.timedelta(days=days_ago)
    return datetime.datetime.combine(day, datetime.time(hour), tzinfo=UTC)


def series(
    angles: Sequence[float],
    *,
    target: float = 90.0,
    slug: str = "squat",
    exercise: str = "Squat",
    side: str = "both",
    direction: int = 1,
    reps: int = 10,
    flags: Sequence[dict[str, int]] = (),
) -> RomSeries:
    """One session per angle (its mean peak), every other day, the last one today."""
    flags = list(flags) or [{} for _ in angles]
    count = len(angles)
    points = tuple(
        SessionRom(
            session_id=f"s{n}",
            started_at=at(2 * (count - 1 - n)),
            best_deg=angle + direction,
            mean_deg=angle,
            low_deg=angle - 2,
            high_deg=angle + 2,
            reps=reps,
            target_deg=target,
            flags=flags[n],
        )
        for n, angle in enumerate(angles)
    )
    return RomSeries(
        slug=slug,
        exercise=exercise,
        angle_label="knee flexion",
        side=side,
        direction=direction,
        normal_deg=135.0 if direction > 0 else 0.0,
        baseline_deg=angles[0] if angles else None,
        points=points,
        flag_labels=SQUAT_LABELS if slug == "squat" else {},
    )


def history(
    *rom: RomSeries, pain: Sequence[tuple[int, Sequence[int]]] = (), tz: datetime.tzinfo = UTC
) -> Progress:
    """`pain`: (days ago, reports that day) pairs."""
    wellbeing = tuple(
        Wellbeing(
            session_id=f"w{days_ago}-{n}",
            started_at=at(days_ago, hour=8 + n).astimezone(tz),
            pain_nrs=nrs,
            effort_borg=3.0,
        )
        for days_ago, reports in sorted(pain, reverse=True)
        for n, nrs in enumerate(reports)
    )
    first, last = alerts.history_window(TODAY)
    return Progress(first=first, last=last, rom=rom, weeks=(), wellbeing=wellbeing)


def last_7_days(*weeks: tuple[float, int], today: datetime.date = TODAY) -> Progress:
    """(expected, done) per calendar week overlapping the 7 days ending `today`."""
    first, last = alerts.adherence_window(today)
    monday = first - datetime.timedelta(days=first.weekday())
    return Progress(
        first=first,
        last=last,
        rom=(),
        weeks=tuple(
            Week(monday=monday + datetime.timedelta(weeks=n), expected=expected, done=done)
            for n, (expected, done) in enumerate(weeks)
        ),
        wellbeing=(),
    )


# --- Missed sessions -----------------------------------------------------------------------------


def test_missed_sessions_says_how_many_of_the_prescribed_sessions_were_done_and_when() -> None:
    assert alerts.missed_sessions(last_7_days((6, 2)), today=TODAY) == [
        Finding(
            "missed_sessions",
            "missed_sessions",
            "Did 2 of 6 prescribed sessions in the last 7 days (Mon 10 Nov – Sun 16 Nov).",
        )
    ]


def test_one_missed_session_of_three_a_week_is_already_below_80_percent() -> None:
    [finding] = alerts.missed_sessions(last_7_days((3, 2)), today=TODAY)
    assert finding.message.startswith("Did 2 of 3 prescribed sessions")


def test_80_percent_of_the_prescribed_sessions_raises_nothing() -> None:
    assert alerts.missed_sessions(last_7_days((15, 12)), today=TODAY) == []
    assert alerts.missed_sessions(last_7_days((5, 4)), today=TODAY) == []


def test_doing_more_than_prescribed_raises_nothing() -> None:
    assert alerts.missed_sessions(last_7_days((3, 5)), today=TODAY) == []


def test_nothing_prescribed_raises_no_missed_sessions_alert() -> None:
    assert alerts.missed_sessions(last_7_days((0, 0)), today=TODAY) == []
    # A plan that starts today asks for 3/7 of a session so far: rounded, nothing yet.
    assert alerts.missed_sessions(last_7_days((3 / 7, 0)), today=TODAY) == []


def test_missed_sessions_adds_up_the_two_calendar_weeks_a_7_day_window_straddles() -> None:
    wednesday = TODAY + datetime.timedelta(days=3)
    progress = last_7_days((3 * 4 / 7, 1), (3 * 3 / 7, 0), today=wednesday)
    assert alerts.missed_sessions(progress, today=wednesday) == [
        Finding(
            "missed_sessions",
            "missed_sessions",
            "Did 1 of 3 prescribed sessions in the last 7 days (Thu 13 Nov – Wed 19 Nov).",
        )
    ]


def test_missed_sessions_refuses_a_window_other_than_the_7_days_ending_today() -> None:
    with pytest.raises(ValueError, match="7 days ending today"):
        alerts.missed_sessions(last_7_days((6, 2)), today=TODAY + datetime.timedelta(days=1))


# --- ROM falling and stalled ---------------------------------------------------------------------


def test_rom_falling_compares_the_last_5_sessions_mean_with_the_median_of_the_5_before() -> None:
    squat = series([88, 90, 91, 90, 97, 84, 83, 82, 81, 80])
    assert alerts.rom_findings(squat) == [
        Finding(
            "rom_falling",
            "rom_falling:squat:both",
            "Squat: knee flexion reached 82° on average over the last 5 sessions, down from 90° "
            "over the 5 before (target 90°).",
        )
    ]


def test_a_sudden_drop_in_the_last_two_sessions_is_enough_for_rom_falling() -> None:
    squat = series([90, 90, 90, 90, 90, 90, 90, 90, 77, 77], target=100)
    [finding] = alerts.rom_findings(squat)
    assert finding.kind == "rom_falling"
    assert "reached 85° on average" in finding.message


def test_one_bad_day_before_does_not_set_the_bar_for_rom_falling() -> None:
    # Mean before 94 (one 110 outlier), median 90: the last 5 at 87 are 3 deg below, not 7.
    squat = series([90, 110, 88, 92, 90, 87, 87, 87, 87, 87], target=90)
    assert alerts.rom_findings(squat) == []


def test_a_loss_under_5_degrees_far_from_the_target_is_a_stall_not_a_fall() -> None:
    squat = series([90, 90, 90, 90, 90, 86, 86, 86, 86, 86], target=100)
    assert [finding.kind for finding in alerts.rom_findings(squat)] == ["rom_stalled"]


def test_a_fall_that_stays_beyond_the_target_raises_nothing() -> None:
    squat = series([100, 100, 100, 100, 100, 93, 93, 93, 93, 93], target=90)
    assert alerts.rom_findings(squat) == []


def test_rom_stalled_says_where_the_patient_stays_and_how_far_from_the_target() -> None:
    heel_slide = series(
        [100, 101, 99, 100, 102, 101, 100, 102, 101, 100],
        target=110,
        slug="heel_slide",
        exercise="Heel slide",
        side="right",
    )
    assert alerts.rom_findings(heel_slide) == [
        Finding(
            "rom_stalled",
            "rom_stalled:heel_slide:right",
            "Heel slide (right): knee flexion has stayed around 101° over the last 5 sessions "
            "(100° over the 5 before), 9° short of the 110° target.",
        )
    ]


def test_a_stall_within_5_degrees_of_the_target_raises_nothing() -> None:
    assert alerts.rom_findings(series([100] * 5 + [101] * 5, target=105)) == []


def test_gaining_2_degrees_in_5_sessions_is_progress_not_a_stall() -> None:
    assert alerts.rom_findings(series([70] * 5 + [72] * 5, target=90)) == []


def test_rom_rules_need_10_sessions() -> None:
    assert alerts.rom_findings(series([90] * 5 + [70] * 4, target=100)) == []


def test_when_lower_is_better_a_rising_angle_is_rom_falling() -> None:
    extension = series(
        [6, 5, 6, 7, 6, 11, 12, 12, 13, 12],
        target=0,
        slug="seated_knee_extension",
        exercise="Seated knee extension",
        side="right",
        direction=-1,
    )
    assert alerts.rom_findings(extension) == [
        Finding(
            "rom_falling",
            "rom_falling:seated_knee_extension:right",
            "Seated knee extension (right): knee flexion reached 12° on average over the last 5 "
            "sessions, up from 6° over the 5 before (target 0°).",
        )
    ]


def test_when_lower_is_better_a_falling_angle_is_progress() -> None:
    extension = series([12] * 5 + [6] * 5, target=0, direction=-1, slug="seated_knee_extension")
    assert alerts.rom_findings(extension) == []


def test_when_lower_is_better_a_stall_short_of_the_target_is_rom_stalled() -> None:
    extension = series(
        [9] * 5 + [8] * 5,
        target=0,
        slug="seated_knee_extension",
        exercise="Seated knee extension",
        side="right",
        direction=-1,
    )
    assert alerts.rom_findings(extension) == [
        Finding(
            "rom_stalled",
            "rom_stalled:seated_knee_extension:right",
            "Seated knee extension (right): knee flexion has stayed around 8° over the last 5 "
            "sessions (9° over the 5 before), 8° short of the 0° target.",
        )
    ]


# --- Pain ----------------------------------------------------------------------------------------


def test_pain_rising_compares_the_last_3_training_days_with_the_5_before() -> None:
    pain = [(20, [3, 3]), (18, [3]), (15, [2, 4]), (13, [3]), (11, [3])]
    pain += [(6, [5, 6]), (4, [5]), (2, [5, 5])]
    assert alerts.pain_rising(history(pain=pain)) == [
        Finding(
            "pain_rising",
            "pain_rising",
            "Pain after exercise averaged 5.2/10 on the last 3 training days, up from a median "
            "of 3.0/10 on the 5 before.",
        )
    ]


def test_a_rise_under_2_points_raises_nothing() -> None:
    pain = [(days, [3]) for days in (20, 18, 15, 13, 11)] + [(6, [5, 4]), (4, [5]), (2, [5])]
    assert alerts.pain_rising(history(pain=pain)) == []  # (4.5 + 5 + 5) / 3 = 4.8 against 3


def test_falling_pain_raises_nothing() -> None:
    pain = [(days, [6]) for days in (20, 18, 15, 13, 11)] + [(days, [2]) for days in (6, 4, 2)]
    assert alerts.pain_rising(history(pain=pain)) == []


def test_only_the_5_training_days_before_the_recent_ones_make_the_baseline() -> None:
    old_high = [(days, [9]) for days in (30, 28, 26)]
    pain = old_high + [(days, [2]) for days in (20, 18, 15, 13, 11)]
    pain += [(days, [4]) for days in (6, 4, 2)]
    [finding] = alerts.pain_rising(history(pain=pain))
    assert finding.message.endswith("up from a median of 2.0/10 on the 5 before.")


def test_a_short_history_compares_with_the_earliest_reports_it_has() -> None:
    pain = [(10, [2]), (8, [2]), (6, [5]), (4, [5]), (2, [4])]
    [finding] = alerts.pain_rising(history(pain=pain))
    assert finding.message == (
        "Pain after exercise averaged 4.7/10 on the last 3 training days, up from a median of "
        "2.0/10 on the 2 before."
    )


def test_pain_rising_needs_2_earlier_training_days() -> None:
    pain = [(8, [1]), (6, [6]), (4, [6]), (2, [6])]
    assert alerts.pain_rising(history(pain=pain)) == []


def test_several_sessions_on_one_day_are_one_training_day() -> None:
    # Three painful sessions today are one day, not a trend: the last 3 days hold two calm ones.
    pain = [(days, [2]) for days in (20, 18, 15, 13, 11, 6, 4)] + [(0, [6, 6, 6])]
    assert alerts.pain_rising(history(pain=pain)) == []  # (2 + 2 + 6) / 3 = 3.3 against 2


def test_training_days_are_the_clinics_local_days() -> None:
    # Late evening UTC is the next morning in Tokyo: with its time zone the 3 reports fall on 2
    # days, so the last 3 training days include a calm one: (2 + 4 + 4) / 3 = 3.3 against 2.
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    late = datetime.datetime.combine(TODAY, datetime.time(23, 30), tzinfo=UTC)
    wellbeing = (
        *history(pain=[(days, [2]) for days in (20, 18, 15, 13, 11)]).wellbeing,
        Wellbeing("a", late - datetime.timedelta(days=2, hours=1), 4, 3.0),
        Wellbeing("b", late - datetime.timedelta(days=1), 4, 3.0),
        Wellbeing("c", late - datetime.timedelta(hours=10), 4, 3.0),
    )
    progress = history()
    progress = Progress(progress.first, progress.last, (), (), wellbeing)
    assert len(alerts.pain_rising(progress, tz=UTC)) == 1
    assert alerts.pain_rising(progress, tz=tokyo) == []


# --- Form flags ----------------------------------------------------------------------------------


def test_a_flag_on_30_percent_of_the_last_3_sessions_repetitions_is_repeated() -> None:
    flags = [{}, {"knee_valgus": 3}, {"knee_valgus": 4, "trunk_lean": 1}, {"knee_valgus": 2}]
    squat = series([90, 90, 90, 90], reps=8, flags=flags)
    assert alerts.form_flags(squat) == [
        Finding(
            "form_flags",
            "form_flags:squat:both:knee_valgus",
            "Squat: knee collapses inwards on 9 of 24 repetitions in the last 3 sessions.",
        )
    ]


def test_a_flag_on_fewer_than_30_percent_of_the_repetitions_raises_nothing() -> None:
    flags = [{"knee_valgus": 3}, {"knee_valgus": 2}, {"knee_valgus": 2}]
    assert alerts.form_flags(series([90, 90, 90], reps=8, flags=flags)) == []  # 7 of 24


def test_only_the_last_3_sessions_count_for_form_flags() -> None:
    flags = [{"knee_valgus": 8}, {"knee_valgus": 8}, {}, {}, {"knee_valgus": 1}]
    assert alerts.form_flags(series([90] * 5, reps=8, flags=flags)) == []


def test_form_flags_need_3_sessions() -> None:
    flags = [{"knee_valgus": 8}, {"knee_valgus": 8}]
    assert alerts.form_flags(series([90, 90], reps=8, flags=flags)) == []


def test_each_repeated_flag_is_its_own_alert_and_unknown_codes_read_as_words() -> None:
    flags = [{"knee_valgus": 5, "wobbly_ankle": 4}] * 3
    findings = alerts.form_flags(series([90, 90, 90], reps=10, flags=flags))
    assert [(f.key, f.message) for f in findings] == [
        (
            "form_flags:squat:both:knee_valgus",
            "Squat: knee collapses inwards on 15 of 30 repetitions in the last 3 sessions.",
        ),
        (
            "form_flags:squat:both:wobbly_ankle",
            "Squat: wobbly ankle on 12 of 30 repetitions in the last 3 sessions.",
        ),
    ]


# --- All rules together --------------------------------------------------------------------------


def test_evaluate_runs_every_rule_with_distinct_keys_and_one_sentence_each() -> None:
    falling = series([90] * 5 + [80] * 5, target=100)
    flagged = series(
        [100] * 5 + [101] * 5,
        target=110,
        slug="heel_slide",
        exercise="Heel slide",
        side="right",
        flags=[{}] * 7 + [{"heel_lift": 5}] * 3,
    )
    pain = [(days, [2]) for days in (20, 18, 15, 13, 11)] + [(days, [5]) for days in (6, 4, 2)]
    findings = evaluate(
        history(falling, flagged, pain=pain), today=TODAY, last_7_days=last_7_days((6, 1))
    )
    assert [finding.kind for finding in findings] == [
        "missed_sessions",
        "rom_falling",
        "rom_stalled",
        "pain_rising",
        "form_flags",
    ]
    assert len({finding.key for finding in findings}) == len(findings)
    for finding in findings:
        assert finding.kind in alerts.KINDS
        assert finding.message.endswith(".") and len(finding.message) <= 300


def test_evaluate_on_a_patient_doing_well_finds_nothing() -> None:
    progressing = series([70, 72, 74, 76, 78, 80, 82, 84, 86, 88], target=90)
    pain = [(days, [3]) for days in (20, 18, 15, 13, 11, 6, 4, 2)]
    progress = history(progressing, pain=pain)
    assert evaluate(progress, today=TODAY, last_7_days=last_7_days((3, 3))) == []


def test_evaluate_on_a_patient_without_any_history_finds_nothing() -> None:
    assert evaluate(history(), today=TODAY, last_7_days=last_7_days((0, 0))) == []
