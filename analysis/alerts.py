"""Therapist alerts: which of a patient's numbers deserve a look, each explained in one sentence.

Pure Python (no Django). `evaluate` judges two `Progress` windows (analysis.progress) that
`sessions.services.alerts_refresh` builds with `sessions.selectors.progress_of_patient`:

- `last_7_days`, exactly the `ADHERENCE_DAYS` ending today, for missed sessions: prescriptions are
  weekly, so any 7 consecutive days hold one week's worth whatever the weekday (the selector
  counts expected sessions pro rata per day, done sessions by local date);
- `progress`, the `HISTORY_DAYS` ending today, for ROM, pain and form.

Each `Finding` carries a `key` naming its subject (`rom_stalled:squat:right`, `pain_rising`, ...)
so that a subject with an open alert is not raised twice. Angles are clinical degrees and every
ROM comparison is direction-aware: for an exercise that moves the angle down (seated knee
extension, target 0 deg) lower is better.
"""

import datetime
import statistics
from collections import Counter
from dataclasses import dataclass

from analysis.progress import Progress, RomSeries

MISSED_SESSIONS = "missed_sessions"
ROM_FALLING = "rom_falling"
ROM_STALLED = "rom_stalled"
PAIN_RISING = "pain_rising"
FORM_FLAGS = "form_flags"
KINDS = (MISSED_SESSIONS, ROM_FALLING, ROM_STALLED, PAIN_RISING, FORM_FLAGS)

# --- Windows -------------------------------------------------------------------------------------
ADHERENCE_DAYS = 7  # missed sessions: the last 7 days, today included
# ROM, pain and form: the last 6 weeks. Older sessions belong to an earlier phase of the
# rehabilitation, and 6 weeks at 2 sessions a week still hold the 2 x ROM_SESSIONS compared.
HISTORY_DAYS = 42

# --- Missed sessions -----------------------------------------------------------------------------
# Below 80% of the prescribed sessions: the usual cut-off for "adherent" in exercise trials. One
# missed session of a 3-a-week plan already falls below it (2 of 3); one of 15 does not.
MIN_ADHERENCE = 0.8

# --- Range of motion -----------------------------------------------------------------------------
# The last 5 sessions of a series against the 5 before: one to two weeks of practice each, the
# same length as the charts' trend (analysis.progress.TREND_WINDOW).
ROM_SESSIONS = 5
# Falling: the mean of the last 5 sessions (a sudden drop in the last one or two sessions shows)
# at least 5 deg worse than the median of the 5 before (one bad day there does not set the bar).
# 5 deg is about the error of a goniometer measurement: a smaller loss may be noise.
ROM_FALL_DEG = 5.0
# Stalled: the median of the last 5 sessions gained less than 2 deg on the median of the 5
# before (a plateau at the camera's day-to-day variation of a few degrees)...
ROM_STALL_GAIN_DEG = 2.0
# ... while still at least 5 deg short of the target (closer is within measurement error of it).
ROM_STALL_SHORTFALL_DEG = 5.0

# --- Pain ----------------------------------------------------------------------------------------
# Pain is reported after each session, and a patient may do three exercises a day: reports are
# averaged per training day so that one day's sessions do not count as a trend. The mean of the
# last 3 training days is compared with the median of the 5 before: a rise that builds up over a
# week or two already lifts the end of the baseline, and one bad day there should not hide it
# (the same recent-mean-against-earlier-median as ROM falling).
PAIN_RECENT_DAYS = 3
PAIN_BASELINE_DAYS = 5  # the training days with a report before the recent ones, up to 5...
PAIN_MIN_BASELINE_DAYS = 2  # ... and at least 2 (a new patient has no baseline yet)
# 2 points on the 0-10 NRS: the minimal clinically important difference (Farrar et al. 2001).
PAIN_RISE_NRS = 2.0

# --- Form ----------------------------------------------------------------------------------------
FORM_SESSIONS = 3  # repeated: over the last 3 sessions of a series, not one bad day
FORM_MIN_SHARE = 0.3  # the same flag on nearly a third of the repetitions is a habit, not a slip

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS (the values of patients.models.Alert.Kind)
    key: str  # the subject: at most one open alert per patient and key
    message: str  # one sentence with the numbers behind it


def history_window(today: datetime.date) -> tuple[datetime.date, datetime.date]:
    return today - datetime.timedelta(days=HISTORY_DAYS - 1), today


def adherence_window(today: datetime.date) -> tuple[datetime.date, datetime.date]:
    return today - datetime.timedelta(days=ADHERENCE_DAYS - 1), today


def evaluate(
    progress: Progress,
    *,
    today: datetime.date,
    last_7_days: Progress,
    tz: datetime.tzinfo = datetime.UTC,
) -> list[Finding]:
    """Every rule on the patient's numbers. `progress` covers `history_window(today)`,
    `last_7_days` covers `adherence_window(today)`; `tz` is the clinic's time zone (training days
    are local days)."""
    return [
        *missed_sessions(last_7_days, today=today),
        *[finding for series in progress.rom for finding in rom_findings(series)],
        *pain_rising(progress, tz=tz),
        *[finding for series in progress.rom for finding in form_flags(series)],
    ]


def missed_sessions(last_7_days: Progress, *, today: datetime.date) -> list[Finding]:
    if (last_7_days.first, last_7_days.last) != adherence_window(today):
        raise ValueError("missed_sessions needs the Progress of the 7 days ending today")
    prescribed = round(last_7_days.sessions_expected)
    done = last_7_days.sessions_done
    if prescribed == 0 or done >= MIN_ADHERENCE * prescribed:
        return []
    first, last = adherence_window(today)
    return [
        Finding(
            MISSED_SESSIONS,
            MISSED_SESSIONS,
            f"Did {done} of {prescribed} prescribed sessions in the last {ADHERENCE_DAYS} days "
            f"({_day(first)} – {_day(last)}).",
        )
    ]


def rom_findings(series: RomSeries) -> list[Finding]:
    """ROM falling, else ROM stalled, for one exercise and side."""
    points = series.trusted_points  # a measurement graded poor raises nothing
    target = series.target_deg
    if len(points) < 2 * ROM_SESSIONS or target is None:
        return []
    recent = [p.mean_deg for p in points[-ROM_SESSIONS:]]
    before = statistics.median(p.mean_deg for p in points[-2 * ROM_SESSIONS : -ROM_SESSIONS])
    recent_mean = statistics.fmean(recent)
    subject = f"{series.slug}:{series.side}"
    lead = f"{series.title}: {series.angle_label}"
    loss = (before - recent_mean) * series.direction
    if loss >= ROM_FALL_DEG and series.shortfall_deg(recent_mean) > 0:
        trend = "down" if recent_mean < before else "up"
        return [
            Finding(
                ROM_FALLING,
                f"{ROM_FALLING}:{subject}",
                f"{lead} reached {_deg(recent_mean)} on average over the last {ROM_SESSIONS} "
                f"sessions, {trend} from {_deg(before)} over the {ROM_SESSIONS} before "
                f"(target {_deg(target)}).",
            )
        ]
    recent_median = statistics.median(recent)
    gain = (recent_median - before) * series.direction
    shortfall = series.shortfall_deg(recent_median)
    if gain < ROM_STALL_GAIN_DEG and shortfall >= ROM_STALL_SHORTFALL_DEG:
        return [
            Finding(
                ROM_STALLED,
                f"{ROM_STALLED}:{subject}",
                f"{lead} has stayed around {_deg(recent_median)} over the last {ROM_SESSIONS} "
                f"sessions ({_deg(before)} over the {ROM_SESSIONS} before), {_deg(shortfall)} "
                f"short of the {_deg(target)} target.",
            )
        ]
    return []


def pain_rising(progress: Progress, *, tz: datetime.tzinfo = datetime.UTC) -> list[Finding]:
    by_day: dict[datetime.date, list[float]] = {}
    for report in progress.wellbeing:
        by_day.setdefault(report.started_at.astimezone(tz).date(), []).append(report.pain_nrs)
    days = [statistics.fmean(by_day[day]) for day in sorted(by_day)]
    recent = days[-PAIN_RECENT_DAYS:]
    baseline = days[-PAIN_RECENT_DAYS - PAIN_BASELINE_DAYS : -PAIN_RECENT_DAYS]
    if len(recent) < PAIN_RECENT_DAYS or len(baseline) < PAIN_MIN_BASELINE_DAYS:
        return []
    now, then = statistics.fmean(recent), statistics.median(baseline)
    if now - then < PAIN_RISE_NRS:
        return []
    return [
        Finding(
            PAIN_RISING,
            PAIN_RISING,
            f"Pain after exercise averaged {now:.1f}/10 on the last {PAIN_RECENT_DAYS} training "
            f"days, up from a median of {then:.1f}/10 on the {len(baseline)} before.",
        )
    ]


def form_flags(series: RomSeries) -> list[Finding]:
    points = series.trusted_points[-FORM_SESSIONS:]
    if len(points) < FORM_SESSIONS:
        return []
    reps = sum(p.reps for p in points)
    flagged: Counter[str] = Counter()
    for point in points:
        flagged.update(point.flags)
    findings = []
    for code in sorted(flagged):
        count = flagged[code]
        if reps == 0 or count < FORM_MIN_SHARE * reps:
            continue
        label = series.flag_labels.get(code, code.replace("_", " "))
        findings.append(
            Finding(
                FORM_FLAGS,
                f"{FORM_FLAGS}:{series.slug}:{series.side}:{code}",
                f"{series.title}: {label[:1].lower()}{label[1:]} on {count} of {reps} "
                f"repetitions in the last {FORM_SESSIONS} sessions.",
            )
        )
    return findings


def _deg(angle: float) -> str:
    return f"{round(angle)}°"


def _day(day: datetime.date) -> str:
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"
