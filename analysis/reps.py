"""Repetition detection: a hysteresis state machine over a smoothed joint angle, sample by sample.

The same counter serves live sessions (fed as frames arrive) and video analysis (fed a whole
filtered series). Everything is expressed on a "motion signal" s = direction * angle, so that the
movement always goes *up* from rest towards the peak threshold, whichever way the joint moves:

    SETTLING --(s stays below rest for settle_s)--> REST --(s rises above rest)--> MOVING
    MOVING --(s back below rest)--> REST, and the excursion is judged:
        full repetition: reached the peak threshold, with the minimum amplitude and duration;
        partial: got at least halfway from rest to peak (reported, never counted);
        otherwise: noise, ignored.

A gap in the signal longer than max_gap_s (patient out of view) drops the repetition in progress
and settles again, rather than guessing what happened.
"""

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from analysis.exercises import ExerciseDefinition, Laterality
from analysis.form import form_flags
from analysis.repetitions import RepetitionMetrics

# A hold counts while the angle is within this many degrees short of the target (or beyond it).
HOLD_BAND_DEG = 10.0
TRACE_HZ = 10.0  # the stored angle trace of a repetition: one value per 0.1 s
REST_LOOKBACK_S = 3.0  # how far back a repetition's onset is looked for
ONSET_TOLERANCE_DEG = 1.0  # within this of the lowest angle at rest, the motion has not begun


class Phase(StrEnum):
    SETTLING = "settling"
    REST = "rest"
    MOVING = "moving"


@dataclass(frozen=True)
class Sample:
    """One frame's clinical angles of both sides (NaN where not seen) and its form measures."""

    t_s: float
    left_deg: float
    right_deg: float
    measures: Mapping[str, float] = field(default_factory=dict)

    def angle(self, side: str) -> float:
        return self.left_deg if side == "left" else self.right_deg


@dataclass(frozen=True)
class PartialRepetition:
    set_number: int
    side: str
    start_s: float
    end_s: float
    peak_deg: float


@dataclass(frozen=True)
class _Point:
    t_s: float
    s: float  # motion signal: direction * angle of the measured side
    side: str
    other_deg: float  # the other side's angle, for symmetry (NaN when not seen)
    measures: Mapping[str, float]


class RepetitionCounter:
    def __init__(
        self,
        exercise: ExerciseDefinition,
        *,
        side: str,
        target_deg: float | None = None,
        set_number: int = 1,
        settle_s: float = 0.3,
        max_gap_s: float = 1.0,
    ) -> None:
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', not {side!r}")
        self.exercise = exercise
        self.side = side
        self.target_deg = exercise.default_target_deg if target_deg is None else target_deg
        self.settle_s = settle_s
        self.max_gap_s = max_gap_s
        thresholds = exercise.thresholds
        self._direction = thresholds.direction
        self._rest = self._direction * thresholds.rest_deg
        self._peak = self._direction * thresholds.peak_deg
        self._halfway = (self._rest + self._peak) / 2
        self.reps: list[RepetitionMetrics] = []
        self.partials: list[PartialRepetition] = []
        self.start_set(set_number)

    # --- state the live page shows ---------------------------------------------------------------
    @property
    def hold_s(self) -> float:
        """How long the angle has been in the target band without leaving it, in this repetition."""
        if self.phase is not Phase.MOVING or self._band_since is None:
            return 0.0
        return self._last_t - self._band_since

    def start_set(self, set_number: int, *, reps_done: int = 0) -> None:
        """Count a new set from its first repetition (or after `reps_done`, when resuming)."""
        self.set_number = set_number
        self.index_in_set = reps_done
        self.phase = Phase.SETTLING
        self._settled_since: float | None = None
        self._rest_window: deque[_Point] = deque()
        self._moving: list[_Point] = []
        self._floor = math.inf
        self._band_since: float | None = None
        self._longest_hold_s = 0.0  # in the repetition under way
        self._last_t = -math.inf

    # --- feeding ---------------------------------------------------------------------------------
    def update(self, sample: Sample) -> RepetitionMetrics | PartialRepetition | None:
        """Feed one sample (times strictly increasing); returns a finished repetition, if any."""
        point = self._point(sample)
        if point is None:
            return None
        if point.t_s - self._last_t > self.max_gap_s:
            self._resettle()
        self._last_t = point.t_s
        if self.phase is Phase.SETTLING:
            self._settle(point)
            return None
        if self.phase is Phase.REST:
            self._rest_point(point)
            return None
        return self._moving_point(point)

    def finish(self) -> PartialRepetition | None:
        """End of the stream: an excursion still under way is at best a partial repetition."""
        result = None
        if self.phase is Phase.MOVING and max(p.s for p in self._moving) >= self._halfway:
            result = self._partial(self._moving)
        self._resettle()
        return result

    # --- the state machine -----------------------------------------------------------------------
    def _point(self, sample: Sample) -> _Point | None:
        if self.exercise.laterality is Laterality.ALTERNATING:
            # Both legs take turns: follow whichever is further into the movement right now.
            seen = [s for s in ("left", "right") if math.isfinite(sample.angle(s))]
            if not seen:
                return None
            side = max(seen, key=lambda s: self._direction * sample.angle(s))
        else:
            side = self.side
            if not math.isfinite(sample.angle(side)):
                return None
        other = "right" if side == "left" else "left"
        return _Point(
            t_s=sample.t_s,
            s=self._direction * sample.angle(side),
            side=side,
            other_deg=sample.angle(other),
            measures=sample.measures,
        )

    def _resettle(self) -> None:
        self.phase = Phase.SETTLING
        self._settled_since = None
        self._rest_window.clear()
        self._moving = []
        self._band_since = None

    def _settle(self, point: _Point) -> None:
        if point.s > self._rest:
            self._settled_since = None
            return
        if self._settled_since is None:
            self._settled_since = point.t_s
        self._remember_rest(point)
        if point.t_s - self._settled_since >= self.settle_s:
            self.phase = Phase.REST

    def _rest_point(self, point: _Point) -> None:
        if point.s <= self._rest:
            self._remember_rest(point)
            return
        # The repetition starts where the motion began: the last moment at (about) its lowest
        # point at rest, not where it crossed the threshold nor at the start of a long pause.
        window = list(self._rest_window)
        lowest = min((p.s for p in window), default=point.s)
        onset = max(
            (i for i, p in enumerate(window) if p.s <= lowest + ONSET_TOLERANCE_DEG), default=0
        )
        self._moving = window[onset:] + [point]
        self._floor = lowest  # the true lowest point at rest, for the range of motion
        self._rest_window.clear()
        self._band_since = None
        self._longest_hold_s = 0.0
        self.phase = Phase.MOVING
        for moving in self._moving:
            self._track_hold(moving)

    def _remember_rest(self, point: _Point) -> None:
        self._rest_window.append(point)
        while point.t_s - self._rest_window[0].t_s > REST_LOOKBACK_S:
            self._rest_window.popleft()

    def _moving_point(self, point: _Point) -> RepetitionMetrics | PartialRepetition | None:
        self._moving.append(point)
        self._track_hold(point)
        if point.s > self._rest:
            return None
        excursion, self._moving = self._moving, []
        self.phase = Phase.REST
        self._remember_rest(point)
        return self._judge(excursion)

    def target_shortfall_deg(self, angle_deg: float) -> float:
        return self.exercise.thresholds.shortfall_deg(self.target_deg, angle_deg)

    def _track_hold(self, point: _Point) -> None:
        # point.s is the angle times the direction, so direction * s is the angle again.
        if self.target_shortfall_deg(self._direction * point.s) > HOLD_BAND_DEG:
            self._band_since = None
            return
        if self._band_since is None:
            self._band_since = point.t_s
        self._longest_hold_s = max(self._longest_hold_s, point.t_s - self._band_since)

    def _judge(self, points: list[_Point]) -> RepetitionMetrics | PartialRepetition | None:
        signal = np.array([p.s for p in points] + [self._floor])
        thresholds = self.exercise.thresholds
        duration = points[-1].t_s - points[0].t_s
        if (
            signal.max() >= self._peak
            and signal.max() - signal.min() >= thresholds.min_amplitude_deg
            and duration >= thresholds.min_duration_s
        ):
            self.index_in_set += 1
            rep = self._metrics(points)
            self.reps.append(rep)
            return rep
        if signal.max() >= self._halfway:
            return self._partial(points)
        return None

    def _partial(self, points: list[_Point]) -> PartialRepetition:
        peak = max(points, key=lambda p: p.s)
        partial = PartialRepetition(
            set_number=self.set_number,
            side=peak.side,
            start_s=points[0].t_s,
            end_s=points[-1].t_s,
            peak_deg=self._direction * peak.s,
        )
        self.partials.append(partial)
        return partial

    # --- what a repetition becomes ---------------------------------------------------------------
    def _metrics(self, points: list[_Point]) -> RepetitionMetrics:
        t = np.array([p.t_s for p in points])
        angle = self._direction * np.array([p.s for p in points])
        extremes = self._direction * np.array([max(p.s for p in points), self._floor])
        peak_at = int(np.argmax([p.s for p in points]))
        outward_s = float(t[peak_at] - t[0])
        return_s = float(t[-1] - t[peak_at])
        concentric, eccentric = (
            (outward_s, return_s) if self.exercise.outward_is_concentric else (return_s, outward_s)
        )
        measures = {
            name: np.array([p.measures.get(name, np.nan) for p in points])
            for name in points[0].measures
        }
        return RepetitionMetrics(
            set_number=self.set_number,
            index=self.index_in_set,
            side=points[peak_at].side,
            start_s=round(float(t[0]), 3),
            end_s=round(float(t[-1]), 3),
            min_deg=round(float(extremes.min()), 1),
            max_deg=round(float(extremes.max()), 1),
            rom_deg=round(float(extremes.max() - extremes.min()), 1),
            duration_s=round(float(t[-1] - t[0]), 3),
            peak_velocity_dps=round(_peak_velocity(t, angle), 1),
            concentric_s=round(concentric, 3),
            eccentric_s=round(eccentric, 3),
            hold_s=round(self._longest_hold_s, 3),
            symmetry_pct=_symmetry_pct(angle, np.array([p.other_deg for p in points])),
            form_flags=form_flags(
                self.exercise, measures, peak_deg=float(angle[peak_at]), target_deg=self.target_deg
            ),
            trace_deg=_trace(t, angle),
        )


def _peak_velocity(t: np.ndarray, angle: np.ndarray) -> float:
    if len(t) < 2:
        return 0.0
    return float(np.max(np.abs(np.diff(angle) / np.diff(t))))


def _symmetry_pct(angle: np.ndarray, other: np.ndarray) -> float | None:
    """100 x the smaller ROM of the two sides over the larger, when the other side was seen for
    most of the repetition (a side view often hides the far limb)."""
    seen = np.isfinite(other)
    if seen.mean() < 0.8:
        return None
    rom, other_rom = np.ptp(angle[seen]), np.ptp(other[seen])
    if max(rom, other_rom) <= 0:
        return None
    return round(float(100 * min(rom, other_rom) / max(rom, other_rom)), 1)


def _trace(t: np.ndarray, angle: np.ndarray) -> list[float]:
    times = np.arange(t[0], t[-1] + 1e-9, 1 / TRACE_HZ)
    return [round(float(value), 1) for value in np.interp(times, t, angle)]
