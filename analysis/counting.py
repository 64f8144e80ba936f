"""Repetition detection: a hysteresis state machine over a smoothed joint angle, sample by sample,
whose thresholds follow the movement itself.

The same counter serves live sessions (fed as frames arrive) and video analysis (fed a whole
filtered series). Everything is expressed on a "motion signal" s = direction * angle, so that the
movement always goes *up* from rest towards the target, whichever way the joint moves:

    REST      follows the lowest point (the trough)  --(s rises `onset` above it)-->  RISING
    RISING    follows the highest point (the crest)  --(s falls `onset` below it)-->  RETURNING
    RETURNING follows the lowest point since the crest; s above the crest again: RISING. It ends
              - at once when s is back within RETURN_NEAR of its rise from where it started,
              - or, once s has come back at least `needed`, when it turns up again or stays
                there for SETTLE_S (a patient who does not return all the way between reps),
              and the excursion is judged:
        full repetition: it rose at least `needed` and came back as far (or to within
                         RETURN_NEAR of its start), and stayed beyond the middle of its range
                         for min_duration_s (a landmark glitch is a brief spike);
        partial: it rose at least the exercise's floor but missed one of those (reported with
                 the reason, not counted);
        otherwise: noise (fidgeting, shifting weight), ignored.

No fixed angle has to be reached. `needed` is COUNT_SHARE of the movement's expected range:
the median of the last repetitions counted, or before the first one the exercise's textbook
rest-to-peak range, lowered to the prescribed target's distance from rest and to the patient's
own recent range (`expected_rom_deg`, from their last sessions) when these are smaller; never
less than the exercise's floor (`min_amplitude_deg`), which keeps noise out. A patient who tires
is still counted as the range shrinks; a patient with a limited range is counted on theirs. The
range reached is still recorded and judged against the target.

A stream that starts mid-movement (a video, a session joined late) has no trough before its
first rise: that excursion counts only if the rise seen covers START_SHARE of its return. A
stream that ends on the way back counts its last repetition once it came back END_SHARE of the
way (`finish`). Exercises that may start from either end (`rests_at_either_end`, e.g. a press
begun at lockout) count from whichever end the first movement leaves. A gap in the signal longer
than max_gap_s ends the stream there (the repetition under way is judged as at the end of a
stream, never guessed through) and counting starts afresh; shorter gaps (a limb passing behind
the body) are bridged.
"""

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from analysis.exercises import ExerciseDefinition, Laterality
from analysis.form import form_flags
from analysis.quality import SEEN_PREFIX, grade_repetition, plausibility, worst
from analysis.repetitions import RepetitionMetrics

# A hold counts while the angle is within this many degrees short of the target (or beyond it).
HOLD_BAND_DEG = 10.0
TRACE_HZ = 10.0  # the stored angle trace of a repetition: one value per 0.1 s
# Measures named with this prefix are joint angles (degrees) whose course over each repetition is
# kept (RepetitionMetrics.joint_traces_deg), to compare it with a reference movement.
JOINT_PREFIX = "joint_deg_"
JOINT_TRACE_MIN_SEEN = 0.5  # a joint seen in less of the repetition gives no trace
ONSET_TOLERANCE_DEG = 1.0  # within this of the trough, the motion has not begun
REST_LOOKBACK_S = 3.0  # how far back a repetition's onset is looked for
COUNT_SHARE = 0.4  # of the expected range, both ways, for a repetition to count
RANGE_MEMORY = 3  # counted repetitions whose median range is the expected range
RETURN_NEAR = 0.25  # back within this share of the rise from the start: the return is complete
SETTLE_S = 0.5  # still this long after coming back far enough: the return is complete
START_SHARE = 0.75  # of its return, for a first excursion joined mid-way to count
JOINED_WITHIN_S = 0.2  # a stream lowest this close to its start was joined on the way up
END_SHARE = 0.5  # of its rise, for a last return cut off by the end of the stream to count
MAX_GAP_S = 2.0


class Phase(StrEnum):
    REST = "rest"
    RISING = "rising"
    RETURNING = "returning"


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
    """A movement that did not count: why, and how far it got."""

    set_number: int
    side: str
    start_s: float
    end_s: float
    peak_deg: float
    needed_deg: float  # the range it had to cover
    rom_deg: float  # the range it covered
    # "short": not far enough; "not_back": did not come back; "brief": a spike (often a landmark
    # glitch); "joined": under way when counting began
    reason: str

    @property
    def attempted(self) -> bool:
        """A repetition the patient tried that fell short (not a glitch nor a late start)."""
        return self.reason in ("short", "not_back")


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
        expected_rom_deg: float | None = None,
        set_number: int = 1,
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        """`side` is "left", "right" or "both"; which limb is followed also depends on the
        exercise's laterality (see _point). `expected_rom_deg` is the patient's own recent range
        of motion in this exercise, when known."""
        if side not in ("left", "right", "both"):
            raise ValueError(f"side must be 'left', 'right' or 'both', not {side!r}")
        self.exercise = exercise
        self.side = side
        self.target_deg = exercise.default_target_deg if target_deg is None else target_deg
        self.max_gap_s = max_gap_s
        thresholds = exercise.thresholds
        self._min_amplitude_deg = thresholds.min_amplitude_deg
        # Before the first repetition: the textbook range, or less when the prescription's target
        # lies closer to rest (a knee in its first week) or the patient's own range is smaller.
        textbook = abs(thresholds.peak_deg - thresholds.rest_deg)
        prescribed = thresholds.direction * (self.target_deg - thresholds.rest_deg)
        own = expected_rom_deg if expected_rom_deg and expected_rom_deg > 0 else math.inf
        self._prior_rom_deg = min(textbook, prescribed if prescribed > 0 else math.inf, own)
        self.reps: list[RepetitionMetrics] = []
        self.partials: list[PartialRepetition] = []
        self.start_set(set_number)

    # --- state the live page shows ---------------------------------------------------------------
    @property
    def hold_s(self) -> float:
        """How long the angle has been in the target band without leaving it, in this repetition."""
        if self.phase is Phase.REST or self._band_since is None:
            return 0.0
        return self._last_t - self._band_since

    @property
    def needed_deg(self) -> float:
        """The range a movement must cover (out and back) to count, in degrees."""
        recent = [rep.rom_deg for rep in self.reps if self._same_limb(rep)][-RANGE_MEMORY:]
        expected = statistics.median(recent) if recent else self._prior_rom_deg
        return max(self._min_amplitude_deg, COUNT_SHARE * expected)

    def _same_limb(self, rep: RepetitionMetrics) -> bool:
        """Whether a repetition was done by the limb followed now: after a switch of side (both
        sides in turn) the other limb's range is not this one's."""
        one_side = self.exercise.laterality is Laterality.ONE_SIDE and self.side != "both"
        return not one_side or rep.side == self.side

    def switch_side(self, side: str) -> None:
        """Follow the other limb from now on (an exercise for one side done on both in turn)."""
        if side not in ("left", "right"):
            raise ValueError(f"a switch goes to 'left' or 'right', not {side!r}")
        self.side = side
        self._restart()

    @property
    def moving(self) -> bool:
        return self.phase is not Phase.REST

    def followed_deg(self, sample: Sample) -> float:
        """The angle of the limb the counter follows in this sample (NaN when none is seen)."""
        point = self._point(sample)
        return math.nan if point is None else self._direction * point.s

    def start_set(self, set_number: int, *, reps_done: int = 0) -> None:
        """Count a new set from its first repetition (or after `reps_done`, when resuming)."""
        self.set_number = set_number
        self.index_in_set = reps_done
        self._direction = self.exercise.thresholds.direction
        self._oriented = not self.exercise.thresholds.rests_at_either_end
        self._last_t = -math.inf
        self._restart()

    # --- feeding ---------------------------------------------------------------------------------
    def update(self, sample: Sample) -> RepetitionMetrics | PartialRepetition | None:
        """Feed one sample (times strictly increasing); returns a finished repetition, if any."""
        point = self._point(sample)
        if point is None:
            return None
        event = None
        if point.t_s - self._last_t > self.max_gap_s:
            event = self._end_of_stream()
            self._restart()
        self._last_t = point.t_s
        if not self._oriented and self._orient(point):
            point = self._point(sample) or point  # seen from the other end now
        return self._step(point) or event

    def finish(self) -> RepetitionMetrics | PartialRepetition | None:
        """End of the stream: a repetition well on its way back counts; one still going out or
        barely turned is at best partial."""
        event = self._end_of_stream()
        self._restart()
        return event

    # --- the state machine -----------------------------------------------------------------------
    def _point(self, sample: Sample) -> _Point | None:
        seen = [side for side in ("left", "right") if math.isfinite(sample.angle(side))]
        if not seen:
            return None
        laterality = self.exercise.laterality
        if laterality is Laterality.BOTH_TOGETHER:
            # Both limbs move together: the one less far into the movement is the movement, and
            # one limb moving alone (a step into place, a landmark glitch) is not a repetition.
            side = min(seen, key=lambda s: self._direction * sample.angle(s))
        elif laterality is Laterality.ALTERNATING or self.side == "both":
            # The limbs take turns (or either may be the one exercising): follow the one further
            # into the movement right now.
            side = max(seen, key=lambda s: self._direction * sample.angle(s))
        elif self.side in seen:
            side = self.side
        else:
            return None
        other = "right" if side == "left" else "left"
        return _Point(
            t_s=sample.t_s,
            s=self._direction * sample.angle(side),
            side=side,
            other_deg=sample.angle(other),
            measures=sample.measures,
        )

    def _restart(self) -> None:
        """Forget the movement under way (start of a set, or after a long gap)."""
        self.phase = Phase.REST
        self._points: list[_Point] = []  # at rest the last REST_LOOKBACK_S, then since the onset
        self._rest_low = math.inf
        self._crest_at = 0  # index into _points
        self._return_at = 0  # index into _points: the lowest point since the crest
        self._first_t: float | None = None  # of the stream (or of what follows a long gap)
        self._joined = True  # no trough seen before the first rise
        self._band_since: float | None = None
        self._longest_hold_s = 0.0
        # The signal's extremes so far, to orient a two-ended exercise.
        self._seen_low, self._seen_high = math.inf, -math.inf

    def _orient(self, point: _Point) -> bool:
        """For an exercise that may start at either end: the end the first clear movement leaves
        is the rest; seen from the other end, the signal is flipped. True when it was flipped."""
        self._seen_low = min(self._seen_low, point.s)
        self._seen_high = max(self._seen_high, point.s)
        clear = max(self._min_amplitude_deg, self._prior_rom_deg)
        if point.s - self._seen_low >= clear:
            self._oriented = True
        elif self._seen_high - point.s >= clear:
            self._direction = -self._direction
            # Seen from the other end, what came so far is the rest before the first repetition.
            self.phase = Phase.REST
            self._points = [self._flip(p) for p in self._points]
            self._oriented = True
            return True
        return False

    @staticmethod
    def _flip(point: _Point) -> _Point:
        return _Point(point.t_s, -point.s, point.side, point.other_deg, point.measures)

    def _step(self, point: _Point) -> RepetitionMetrics | PartialRepetition | None:
        if self._first_t is None:
            self._first_t = point.t_s
        if self.phase is Phase.REST:
            self._rest_point(point)
            return None
        self._points.append(point)
        self._track_hold(point)
        if self.phase is Phase.RISING:
            self._rising_point(point)
            return None
        return self._returning_point(point)

    @property
    def _onset_deg(self) -> float:
        return self._min_amplitude_deg / 2

    def _rest_point(self, point: _Point) -> None:
        self._points.append(point)
        while point.t_s - self._points[0].t_s > REST_LOOKBACK_S:
            self._points.pop(0)
        # The trough of the last few seconds: a rest that drifts (sinking into the knees) moves it.
        lowest = min(reversed(self._points), key=lambda p: p.s)  # the latest, if tied
        if point.s - lowest.s < self._onset_deg:
            return
        # The repetition starts where the motion began: the last moment at (about) the trough,
        # not where the onset threshold was crossed nor at the start of a long pause.
        onset = max(i for i, p in enumerate(self._points) if p.s <= lowest.s + ONSET_TOLERANCE_DEG)
        self._points = self._points[onset:]
        self._rest_low = lowest.s  # the true lowest point at rest, for the range of motion
        # Lowest at the very start of the stream: it never came down, it was joined on the way.
        assert self._first_t is not None  # nosec B101 # narrows the type: _step set it
        self._joined = lowest.t_s - self._first_t <= JOINED_WITHIN_S
        self.phase = Phase.RISING
        self._crest_at = max(range(len(self._points)), key=lambda i: self._points[i].s)
        self._band_since = None
        self._longest_hold_s = 0.0
        for moving in self._points:
            self._track_hold(moving)

    def _rising_point(self, point: _Point) -> None:
        last = len(self._points) - 1
        if point.s >= self._points[self._crest_at].s:
            self._crest_at = last
        elif self._points[self._crest_at].s - point.s >= self._onset_deg:
            self.phase = Phase.RETURNING
            self._return_at = last

    def _returning_point(self, point: _Point) -> RepetitionMetrics | PartialRepetition | None:
        last = len(self._points) - 1
        crest = self._points[self._crest_at]
        if point.s > crest.s:
            self.phase = Phase.RISING
            self._crest_at = last
            return None
        if point.s < self._points[self._return_at].s:  # the first time it got this low
            self._return_at = last
        low = self._points[self._return_at]
        rise = crest.s - self._points[0].s
        if not self._joined and point.s <= self._points[0].s + RETURN_NEAR * rise:
            return self._complete(last)
        turned_up = point.s - low.s >= self._onset_deg
        settled = point.t_s - low.t_s >= SETTLE_S
        if crest.s - low.s >= self.needed_deg and (turned_up or settled):
            return self._complete(self._return_at)
        return None

    def _complete(self, end: int) -> RepetitionMetrics | PartialRepetition | None:
        """The excursion ends at _points[end]; what follows it is rest (or the next rise)."""
        excursion, after = self._points[: end + 1], self._points[end:]
        joined, rest_low = self._joined, self._rest_low
        self.phase = Phase.REST
        self._points = []
        self._joined = False
        event = self._judge(excursion, joined=joined, rest_low=rest_low)
        for point in after:  # too few to complete another excursion: nothing to return
            self._step(point)
        return event

    def _end_of_stream(self) -> RepetitionMetrics | PartialRepetition | None:
        if self.phase is Phase.REST:
            return None
        return self._judge(self._points, joined=self._joined, rest_low=self._rest_low, cut_off=True)

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

    def _judge(
        self, points: list[_Point], *, joined: bool, rest_low: float, cut_off: bool = False
    ) -> RepetitionMetrics | PartialRepetition | None:
        signal = np.array([p.s for p in points])
        crest = float(signal.max())
        rise = crest - float(signal[0])
        back = crest - float(signal[signal.argmax() :].min())
        needed = self.needed_deg
        if max(rise, back) < self._min_amplitude_deg or not self._oriented:
            return None  # noise, or a two-ended exercise's first movement is not yet clear
        if joined and rise < START_SHARE * back:
            return self._partial(points, needed, reason="joined")
        # Back within RETURN_NEAR of where it started is back, however small the repetition.
        back_enough = min(needed, (1 - RETURN_NEAR) * rise)
        came_back = back >= END_SHARE * rise if cut_off else back >= back_enough
        held = _time_above_s(points, (crest + float(signal[0])) / 2)
        if rise < needed:
            return self._partial(points, needed, reason="short")
        if not came_back:
            return self._partial(points, needed, reason="not_back")
        if held < self.exercise.thresholds.min_duration_s:
            return self._partial(points, needed, reason="brief")
        self.index_in_set += 1
        rep = self._metrics(points, rest_low)
        self.reps.append(rep)
        return rep

    def _partial(self, points: list[_Point], needed: float, *, reason: str) -> PartialRepetition:
        best = self._best(points)
        signal = [p.s for p in points]
        partial = PartialRepetition(
            set_number=self.set_number,
            side=best.side,
            start_s=points[0].t_s,
            end_s=points[-1].t_s,
            peak_deg=round(self._direction * best.s, 1),
            needed_deg=round(needed, 1),
            rom_deg=round(max(signal) - min(signal), 1),
            reason=reason,
        )
        self.partials.append(partial)
        return partial

    def _best(self, points: list[_Point]) -> _Point:
        """The point furthest towards the target (for a two-ended exercise counted from its far
        end, that is the rest the patient returns to)."""
        towards = self.exercise.thresholds.direction * self._direction
        return max(points, key=lambda p: towards * p.s)

    # --- what a repetition becomes ---------------------------------------------------------------
    def _metrics(self, points: list[_Point], rest_low: float) -> RepetitionMetrics:
        t = np.array([p.t_s for p in points])
        signal = np.array([p.s for p in points])
        angle = self._direction * signal
        extremes = self._direction * np.array([signal.max(), min(signal.min(), rest_low)])
        peak_at = int(np.argmax(signal))
        outward_s = float(t[peak_at] - t[0])
        return_s = float(t[-1] - t[peak_at])
        # Counted from the far end of a two-ended exercise, the outward half is the other phase.
        outward_is_concentric = self.exercise.outward_is_concentric == (
            self._direction == self.exercise.thresholds.direction
        )
        concentric, eccentric = (
            (outward_s, return_s) if outward_is_concentric else (return_s, outward_s)
        )
        measures = {
            name: np.array([p.measures.get(name, np.nan) for p in points])
            for name in points[0].measures
        }
        best = self._direction * self._best(points).s
        side = points[peak_at].side
        rom = float(extremes.max() - extremes.min())
        velocity = _peak_velocity(t, angle)
        other = np.array([p.other_deg for p in points])
        quality = worst(
            grade_repetition(_gaps_unseen(measures, t), self.exercise.angle, side),
            plausibility(
                self.exercise,
                peak_deg=float(best),
                peak_velocity_dps=velocity,
                rom_deg=rom,
                other_rom_deg=_other_rom(other),
            ),
        )
        return RepetitionMetrics(
            set_number=self.set_number,
            index=self.index_in_set,
            side=side,
            start_s=round(float(t[0]), 3),
            end_s=round(float(t[-1]), 3),
            min_deg=round(float(extremes.min()), 1),
            max_deg=round(float(extremes.max()), 1),
            rom_deg=round(rom, 1),
            duration_s=round(float(t[-1] - t[0]), 3),
            peak_velocity_dps=round(velocity, 1),
            concentric_s=round(concentric, 3),
            eccentric_s=round(eccentric, 3),
            hold_s=round(self._longest_hold_s, 3),
            symmetry_pct=_symmetry_pct(angle, other),
            form_flags=form_flags(
                self.exercise, measures, peak_deg=float(best), target_deg=self.target_deg
            ),
            quality=quality.grade.value,
            quality_reasons=list(quality.reasons),
            trace_deg=_trace(t, angle),
            joint_traces_deg=_joint_traces(t, measures),
        )


def _time_above_s(points: list[_Point], level: float) -> float:
    """How long the motion signal stayed above `level`, crossings interpolated between samples (so
    that 15 frames/s and 30 frames/s agree)."""
    total = 0.0
    for a, b in zip(points, points[1:], strict=False):
        low, high = sorted((a.s - level, b.s - level))
        if low >= 0:
            total += b.t_s - a.t_s
        elif high > 0:
            total += (b.t_s - a.t_s) * high / (high - low)
    return total


def _peak_velocity(t: np.ndarray, angle: np.ndarray) -> float:
    if len(t) < 2:
        return 0.0
    return float(np.max(np.abs(np.diff(angle) / np.diff(t))))


def _gaps_unseen(measures: dict[str, np.ndarray], t: np.ndarray) -> dict[str, np.ndarray]:
    """The measures with the frames missing between the repetition's samples (the limb not seen,
    no pose: gaps the counter bridged) added to the seen flags as not seen."""
    if len(t) < 3:
        return measures
    step = float(np.median(np.diff(t)))
    missing = int(np.sum(np.maximum(np.round(np.diff(t) / step) - 1, 0))) if step > 0 else 0
    return {
        name: np.concatenate([values, np.zeros(missing)])
        if name.startswith(SEEN_PREFIX)
        else values
        for name, values in measures.items()
    }


def _other_rom(other: np.ndarray) -> float | None:
    """The other side's range over the repetition, when it was seen for most of it."""
    seen = np.isfinite(other)
    return float(np.ptp(other[seen])) if seen.mean() >= 0.8 else None


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


def _joint_traces(t: np.ndarray, measures: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Each joint angle measure over the repetition at TRACE_HZ, bridged over the frames where the
    joint was not seen; joints seen too little are left out."""
    traces = {}
    for name, values in measures.items():
        seen = np.isfinite(values)
        if name.startswith(JOINT_PREFIX) and seen.mean() >= JOINT_TRACE_MIN_SEEN and seen.sum() > 1:
            traces[name.removeprefix(JOINT_PREFIX)] = _trace(t[seen], values[seen])
    return traces
