"""A patient's recovery as plain numbers: ROM per session, weekly adherence, pain and effort.

Pure Python (no Django): `sessions.selectors.progress_of_patient` fills these from a few
aggregate queries; `analysis.charts` draws them; `analysis.alerts` judges them.

"ROM" on the charts is the clinical one: the joint angle reached at the peak of a repetition
(0 deg = anatomical position), so it compares directly with the prescribed target and the AAOS
normal value. For an exercise that moves the angle down (seated knee extension: from ~85 deg
towards 0), the peak is the lowest angle and lower is better.
"""

import datetime
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from analysis.exercises import furthest

TREND_WINDOW = 5  # sessions in the rolling median
# A printed chart with more sessions than this draws one point per week: a year of daily dots is
# unreadable on paper, and every dot costs the PDF renderer time.
PRINT_MAX_POINTS = 120


@dataclass(frozen=True)
class SessionRom:
    """One session's repetitions on one side: the angle reached at each repetition's peak."""

    session_id: str
    started_at: datetime.datetime
    best_deg: float  # furthest towards the target
    mean_deg: float
    low_deg: float  # spread of the repetitions' peaks
    high_deg: float
    reps: int
    target_deg: float
    flags: dict[str, int] = field(default_factory=dict)  # form flag code -> repetitions flagged
    # Repetitions graded poor (analysis.quality): the numbers above leave them out, unless all
    # were (`poor`: the session is drawn hollow and no alert rests on it).
    poor_reps: int = 0
    poor: bool = False
    # The mean 0-100 similarity of the repetitions to the therapist's reference movement
    # (analysis.similarity); None when none was scored.
    similarity: float | None = None


@dataclass(frozen=True)
class RomSeries:
    """The sessions of one exercise on one side, oldest first."""

    slug: str
    exercise: str
    angle_label: str  # e.g. "knee flexion"
    side: str  # "left", "right" or "both"
    direction: int  # +1: the angle grows towards the target; -1: it falls
    normal_deg: float  # the AAOS normal limit on the target's side
    baseline_deg: float | None  # mean peak of the first session ever (before any period)
    points: tuple[SessionRom, ...]
    flag_labels: dict[str, str] = field(default_factory=dict)

    @property
    def poor_reps(self) -> int:
        return sum(point.poor_reps for point in self.points)

    @property
    def trusted_points(self) -> tuple[SessionRom, ...]:
        """The sessions whose measurement can be trusted (not graded poor throughout)."""
        return tuple(point for point in self.points if not point.poor)

    @property
    def target_deg(self) -> float | None:
        """The latest prescribed target (targets are copied into each session)."""
        return self.points[-1].target_deg if self.points else None

    @property
    def trend(self) -> list[float]:
        """The rolling median of the trusted sessions' means, one value per trusted_points."""
        return rolling_median([p.mean_deg for p in self.trusted_points])

    @property
    def title(self) -> str:
        side = "" if self.side == "both" else f" ({self.side})"
        return f"{self.exercise}{side}"

    def shortfall_deg(self, angle_deg: float) -> float:
        """How far an angle stays short of the target (negative once beyond it)."""
        target = self.target_deg if self.target_deg is not None else angle_deg
        return (target - angle_deg) * self.direction


@dataclass(frozen=True)
class Week:
    monday: datetime.date
    expected: float  # sessions the prescriptions asked for in this week (pro rata)
    done: int

    @property
    def met(self) -> bool:
        return self.expected > 0 and self.done >= round(self.expected)


@dataclass(frozen=True)
class Wellbeing:
    """What the patient reported after one session."""

    session_id: str
    started_at: datetime.datetime
    pain_nrs: float  # a weekly summary holds the week's mean
    effort_borg: float


@dataclass(frozen=True)
class Progress:
    first: datetime.date
    last: datetime.date
    rom: tuple[RomSeries, ...]
    weeks: tuple[Week, ...]
    wellbeing: tuple[Wellbeing, ...]

    @property
    def sessions_done(self) -> int:
        return sum(week.done for week in self.weeks)

    @property
    def sessions_expected(self) -> float:
        return sum(week.expected for week in self.weeks)

    @property
    def adherence(self) -> float | None:
        expected = self.sessions_expected
        return min(self.sessions_done / expected, 1.0) if expected else None

    @property
    def streaks(self) -> tuple[int, int]:
        return week_streaks(self.weeks)

    def for_print(self) -> "Progress":
        """The same progress with one point per week where a series is too long for paper."""
        return replace(
            self,
            rom=tuple(_weekly_rom(s) if len(s.points) > PRINT_MAX_POINTS else s for s in self.rom),
            wellbeing=(
                _weekly_wellbeing(self.wellbeing)
                if len(self.wellbeing) > PRINT_MAX_POINTS
                else self.wellbeing
            ),
        )

    def sides_of(self, slug: str) -> list[RomSeries]:
        return [series for series in self.rom if series.slug == slug]

    @property
    def exercises(self) -> list[str]:
        """Exercise slugs in the order they first appear."""
        return list(dict.fromkeys(series.slug for series in self.rom))


def rolling_median(values: Sequence[float], window: int = TREND_WINDOW) -> list[float]:
    """Trailing median over up to `window` values: robust to one bad day, and causal, so the
    last point is what the therapist would have seen on that day."""
    return [statistics.median(values[max(0, i + 1 - window) : i + 1]) for i in range(len(values))]


def week_streaks(weeks: Sequence[Week]) -> tuple[int, int]:
    """(current, longest) run of consecutive weeks in which the plan was met. The current week
    does not break the current run while it is still under way."""
    longest = run = 0
    for week in weeks:
        run = run + 1 if week.met else 0
        longest = max(longest, run)
    current = run
    if weeks and not weeks[-1].met:
        current = 0
        for week in reversed(weeks[:-1]):
            if not week.met:
                break
            current += 1
    return current, longest


def flag_totals(points: Iterable[SessionRom]) -> dict[str, int]:
    """Repetitions flagged per form flag code, over several sessions."""
    totals: Counter[str] = Counter()
    for point in points:
        totals.update(point.flags)
    return dict(totals)


def _week_of(moment: datetime.datetime) -> datetime.datetime:
    """Monday noon of the moment's week: where a weekly point is drawn."""
    monday = moment - datetime.timedelta(days=moment.weekday())
    return monday.replace(hour=12, minute=0, second=0, microsecond=0)


def _weekly_rom(series: RomSeries) -> RomSeries:
    weeks: dict[datetime.datetime, list[SessionRom]] = {}
    for point in series.points:
        weeks.setdefault(_week_of(point.started_at), []).append(point)
    points = []
    for monday, sessions in weeks.items():
        # As a session leaves out its poor repetitions, a week leaves out its poor sessions.
        week = [p for p in sessions if not p.poor] or sessions
        points.append(
            SessionRom(
                session_id=f"week of {monday:%Y-%m-%d}",
                started_at=monday,
                best_deg=furthest(series.direction, (p.best_deg for p in week)),
                mean_deg=round(statistics.fmean(p.mean_deg for p in week), 1),
                low_deg=min(p.low_deg for p in week),
                high_deg=max(p.high_deg for p in week),
                reps=sum(p.reps for p in week),
                target_deg=week[-1].target_deg,
                flags=flag_totals(week),
                poor_reps=sum(p.poor_reps for p in sessions),
                poor=all(p.poor for p in sessions),
            )
        )
    return replace(series, points=tuple(points))


def _weekly_wellbeing(reports: Sequence[Wellbeing]) -> tuple[Wellbeing, ...]:
    weeks: dict[datetime.datetime, list[Wellbeing]] = {}
    for report in reports:
        weeks.setdefault(_week_of(report.started_at), []).append(report)
    return tuple(
        Wellbeing(
            session_id=f"week of {monday:%Y-%m-%d}",
            started_at=monday,
            pain_nrs=round(statistics.fmean(r.pain_nrs for r in week), 1),
            effort_borg=round(statistics.fmean(r.effort_borg for r in week), 1),
        )
        for monday, week in weeks.items()
    )


def mondays(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    """The Mondays of the weeks that overlap [first, last]."""
    monday = first - datetime.timedelta(days=first.weekday())
    weeks = (last - monday).days // 7 + 1
    return [monday + datetime.timedelta(weeks=n) for n in range(weeks)]


# --- What a report says about each goal ----------------------------------------------------------

GOAL_MET_WITHIN_DEG = 2.0  # goniometry's own error is about 5 deg; camera ROM is not finer
ON_TRACK_GAIN_DEG = 5.0


@dataclass(frozen=True)
class Measure:
    """One line of a report's objective measures: a series summed up over the period."""

    series: RomSeries
    first_deg: float  # trend at the start of the period
    latest_deg: float  # trend at the end of the period
    best_deg: float
    flagged: dict[str, int]  # form flag code -> repetitions flagged in the period
    reps: int

    @property
    def change_deg(self) -> float:
        """Gain over the period towards the target (negative: worse)."""
        return (self.latest_deg - self.first_deg) * self.series.direction

    @property
    def status(self) -> str:
        if self.series.shortfall_deg(self.latest_deg) <= GOAL_MET_WITHIN_DEG:
            return "Met"
        if self.change_deg >= ON_TRACK_GAIN_DEG:
            return "Progressing"
        return "Not met"


def measure_of(series: RomSeries) -> Measure:
    """The series' objective measures from its trusted sessions (from all of them only when
    every one was measured poorly)."""
    points = series.trusted_points or series.points
    trend = rolling_median([p.mean_deg for p in points])
    best = furthest(series.direction, (p.best_deg for p in points))
    return Measure(
        series=series,
        first_deg=trend[0],
        latest_deg=trend[-1],
        best_deg=best,
        flagged=flag_totals(series.points),
        reps=sum(p.reps for p in series.points),
    )
