"""Repetition counting on real joint-angle traces, changed the ways patients differ.

Six real traces, each with its count made by eye: the motion-capture knee angle of 5 squats
(`squats1_videoAndMocap.mot`) and the clinical angles BlazePose gives on five dev-set clips
(`fixtures/traces/`, written by `extract.py` there, unsmoothed). Each goes through both paths:
- offline: the zero-phase Butterworth of video analysis at the trace's own rate, then the counter;
- live: the frames a browser sends (15 a second), One Euro sample by sample, then the counter;
as it is; with a limited range; never back to full rest; slower and faster; joined during its
first repetition; out of view at rest between repetitions; as two sets with a pause. A still
patient and a fidgeting one count nothing.

The changes work on a trace's smooth part (its Butterworth) and add its own jitter back: a patient
with a third of the range still has the whole jitter of the camera.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import pairwise, product
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.counting import START_SHARE, RepetitionCounter, Sample
from analysis.exercises import BY_SLUG, ExerciseDefinition
from analysis.filters import SMOOTHING_CUTOFF_HZ, OneEuroFilter, butterworth_zero_phase
from analysis.tracker import LIVE_BETA, LIVE_MIN_CUTOFF_HZ

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LIVE_HZ = 15.0  # frames a second sent by the live page
MAX_CADENCE_PER_S = 1.5  # faster than this is not an exercise a clinic prescribes
GAP_S = 1.5  # out of view for this long at rest: shorter than the counter's 2 s bridge
PAUSE_S = 20.0  # between two sets
IDLE_S = 30.0  # a patient who does not exercise, watched this long


@dataclass(frozen=True)
class Trace:
    name: str
    exercise: ExerciseDefinition
    side: str  # as a session measures it
    reps: int  # counted by eye
    crests_s: tuple[float, ...]  # by eye: the turning point of every repetition
    t_s: np.ndarray
    left: np.ndarray  # clinical angle in degrees, NaN where not seen
    right: np.ndarray

    @property
    def fs(self) -> float:
        return float(1 / np.median(np.diff(self.t_s)))

    @property
    def angles(self) -> tuple[np.ndarray, np.ndarray]:
        return self.left, self.right

    @property
    def direction(self) -> int:
        return self.exercise.thresholds.direction


def _mocap_squats() -> Trace:
    lines = (FIXTURES / "squats1_videoAndMocap.mot").read_text().splitlines()
    header = lines.index("endheader") + 1
    columns = lines[header].split("\t")
    table = np.loadtxt(lines[header + 1 :])
    knee = table[:, columns.index("knee_angle_r")]
    return Trace(
        name="mocap_squats",
        exercise=BY_SLUG["squat"],
        side="right",
        reps=5,
        crests_s=(1.0, 2.5, 4.0, 5.6, 7.2),  # the bottoms, as in test_counting.py
        t_s=table[:, 0],
        left=np.full_like(knee, np.nan),
        right=knee,
    )


def _devset_trace(stem: str) -> Trace:
    data = json.loads((FIXTURES / "traces" / f"{stem}.json").read_text())
    moving = data["moving_side"]

    def degrees(values: list[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    return Trace(
        name=stem,
        exercise=BY_SLUG[data["exercise"]],
        # As a prescription measures it (and bench/rep_accuracy.py): the side the label names,
        # else both limbs ("both" in all five: bilateral movements).
        side=moving if moving in ("left", "right") else "both",
        reps=data["reps"],
        crests_s=tuple(data["turning_points_s"]),
        t_s=np.array(data["t_s"], dtype=float),
        left=degrees(data["left_deg"]),
        right=degrees(data["right_deg"]),
    )


TRACES = (
    "mocap_squats",
    "Vaidansh__squat1",  # squat, 9
    "Vaidansh__bc",  # elbow_flexion, 10
    "NoorAshraf__lateral_raise",  # shoulder_abduction, 4
    "Divyansh3021__push_up-test",  # push_up, 4
    "ahmedlila__3_Count_Jumping_Jacks",  # jumping_jack, 12
)


@cache
def _trace(name: str) -> Trace:
    return _mocap_squats() if name == "mocap_squats" else _devset_trace(name)


# --- the two counting paths ----------------------------------------------------------------------
def _smooth(values: np.ndarray, fs: float) -> np.ndarray:
    return butterworth_zero_phase(values, fs_hz=fs, cutoff_hz=SMOOTHING_CUTOFF_HZ)


def _counted(
    trace: Trace, t_s: np.ndarray, left: np.ndarray, right: np.ndarray, **options: Any
) -> RepetitionCounter:
    counter = RepetitionCounter(trace.exercise, side=trace.side, **options)
    for t, a, b in zip(t_s, left, right, strict=True):
        counter.update(Sample(float(t), float(a), float(b)))
    counter.finish()
    return counter


def offline(trace: Trace, **options: Any) -> RepetitionCounter:
    left, right = (_smooth(values, trace.fs) for values in trace.angles)
    return _counted(trace, trace.t_s, left, right, **options)


def live(trace: Trace, **options: Any) -> RepetitionCounter:
    frames_s = np.arange(trace.t_s[0], trace.t_s[-1] + 1e-9, 1 / LIVE_HZ)
    on_screen = np.searchsorted(trace.t_s, frames_s + 1e-9, side="right") - 1
    smoothed = []
    for values in trace.angles:
        one_euro = OneEuroFilter(LIVE_MIN_CUTOFF_HZ, LIVE_BETA)
        sent = zip(frames_s, values[on_screen], strict=True)
        smoothed.append(np.array([one_euro(float(t), float(v)) for t, v in sent]))
    return _counted(trace, frames_s, smoothed[0], smoothed[1], **options)


PATHS: dict[str, Callable[..., RepetitionCounter]] = {"offline": offline, "live": live}


# --- what a trace is made of ---------------------------------------------------------------------
def _seen(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).any())


def _rest_and_range(trace: Trace, smooth: np.ndarray) -> tuple[float, float]:
    """The rest level (an angle) and the range of the movement (degrees) of a smooth signal."""
    low, high = np.nanpercentile(trace.direction * smooth, [5, 95])
    return float(trace.direction * low), float(high - low)


def _motion(trace: Trace) -> np.ndarray:
    """Both limbs together, smoothed, as a signal that grows towards the target."""
    smooth = np.array([_smooth(values, trace.fs) for values in trace.angles])
    seen = np.isfinite(smooth)
    mean = np.where(seen, smooth, 0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
    return trace.direction * np.where(seen.any(axis=0), mean, np.nan)


def _range(trace: Trace) -> float:
    return _rest_and_range(trace, trace.direction * _motion(trace))[1]


def _each_side(trace: Trace, change: Callable[[np.ndarray, float, float], np.ndarray]) -> Trace:
    """The trace with change(smooth part, rest level, range) on each side seen, its jitter added
    back."""
    changed = []
    for values in trace.angles:
        if not _seen(values):
            changed.append(values)
            continue
        smooth = _smooth(values, trace.fs)
        rest, extent = _rest_and_range(trace, smooth)
        changed.append(change(smooth, rest, extent) + (values - smooth))
    return replace(trace, left=changed[0], right=changed[1])


def _index(trace: Trace, t_s: float) -> int:
    return int(np.searchsorted(trace.t_s, t_s))


def _cadence_per_s(trace: Trace) -> float:
    return float(1 / np.median(np.diff(trace.crests_s)))


# --- variants: the trace changed, and the count it must give -------------------------------------
@dataclass(frozen=True)
class Case:
    trace: Trace
    expected: int
    options: dict[str, Any] = field(default_factory=dict)


def as_is(trace: Trace) -> Case:
    return Case(trace, trace.reps)


def _limited_range(share: float) -> Callable[[Trace], Case]:
    """The movement shrunk to `share` of its range around the rest level, for a patient whose
    range is known from their last sessions (`expected_rom_deg`). Under the exercise's floor
    (min_amplitude_deg) a movement is not a repetition, by design: 15 % of every range here is;
    within 10 % of the floor either count is defensible, and the variant is skipped."""

    def variant(trace: Trace) -> Case:
        limited = _each_side(trace, lambda smooth, rest, _: rest + share * (smooth - rest))
        own_range = share * _range(trace)
        floor = trace.exercise.thresholds.min_amplitude_deg
        if 0.9 * floor < own_range < 1.1 * floor:
            pytest.skip(f"a {own_range:.1f} deg range is at the {floor:g} deg floor")
        expected = trace.reps if own_range >= floor else 0
        return Case(limited, expected, {"expected_rom_deg": own_range})

    variant.__name__ = f"range_{round(share * 100)}pct"
    return variant


def _short_of_rest(trace: Trace, first: int, stop: int) -> Trace:
    """Between samples first and stop, the lowest 30 % of the range is never reached."""

    def change(smooth: np.ndarray, rest: float, extent: float) -> np.ndarray:
        floor = np.full_like(smooth, -np.inf)
        floor[first:stop] = trace.direction * rest + 0.3 * extent
        return trace.direction * np.maximum(trace.direction * smooth, floor)

    return _each_side(trace, change)


def never_at_full_rest(trace: Trace) -> Case:
    return Case(_short_of_rest(trace, 0, len(trace.t_s)), trace.reps)


def back_part_way_between_reps(trace: Trace) -> Case:
    """From rest and back to rest, but between repetitions back only 70 % of the way (a curl that
    re-extends part way)."""
    first, last = (_index(trace, trace.crests_s[i]) for i in (0, -1))
    return Case(_short_of_rest(trace, first, last), trace.reps)


def _paced(factor: float) -> Callable[[Trace], Case]:
    """Time stretched by `factor` (3: three times slower), sampled at the trace's own rate."""

    def variant(trace: Trace) -> Case:
        cadence = _cadence_per_s(trace) / factor
        if cadence > MAX_CADENCE_PER_S:
            pytest.skip(f"{cadence:.1f} repetitions/s: faster than any prescription")
        t_s = np.arange(0, trace.t_s[-1] * factor, 1 / trace.fs)
        left, right = (np.interp(t_s / factor, trace.t_s, values) for values in trace.angles)
        return Case(replace(trace, t_s=t_s, left=left, right=right), trace.reps)

    variant.__name__ = f"slowed_{factor:g}x" if factor > 1 else f"sped_up_{1 / factor:g}x"
    return variant


def _joined(left_share: float) -> Callable[[Trace], Case]:
    """The stream starts during the first repetition's rise, with `left_share` of the rise still to
    come. The counter counts such a repetition when the rise seen covers START_SHARE of its return
    (which here is about the whole rise)."""

    def variant(trace: Trace) -> Case:
        motion = _motion(trace)
        crest = _index(trace, trace.crests_s[0])
        trough = int(np.nanargmin(motion[:crest]))
        level = motion[crest] - left_share * (motion[crest] - motion[trough])
        cut = trough + int(np.argmax(motion[trough:crest] >= level))
        joined = replace(trace, t_s=trace.t_s[cut:], left=trace.left[cut:], right=trace.right[cut:])
        return Case(joined, trace.reps if left_share >= START_SHARE else trace.reps - 1)

    variant.__name__ = f"joined_with_{round(left_share * 100)}pct_of_the_rise_left"
    return variant


def out_of_view_at_rest(trace: Trace) -> Case:
    """Unseen for GAP_S at the lowest point between every two repetitions (pausing there)."""
    motion = _motion(trace)
    crests = [_index(trace, t) for t in trace.crests_s]
    troughs = [a + int(np.nanargmin(motion[a:b])) for a, b in pairwise(crests)]
    fs = trace.fs
    missing = round(GAP_S * fs)
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    start, shift = 0, 0.0
    for cut in troughs:
        pieces.append((trace.t_s[start:cut] + shift, trace.left[start:cut], trace.right[start:cut]))
        gap_s = trace.t_s[cut] + shift + np.arange(missing) / fs
        pieces.append((gap_s, np.full(missing, np.nan), np.full(missing, np.nan)))
        start, shift = cut, shift + missing / fs
    pieces.append((trace.t_s[start:] + shift, trace.left[start:], trace.right[start:]))
    t_s, left, right = (np.concatenate(part) for part in zip(*pieces, strict=True))
    return Case(replace(trace, t_s=t_s, left=left, right=right), trace.reps)


def two_sets(trace: Trace) -> Case:
    """The trace, PAUSE_S still at rest (with the trace's own jitter), the trace again."""
    rng = np.random.default_rng(2)
    pause = round(PAUSE_S * trace.fs)
    sides = []
    for values in trace.angles:
        if not _seen(values):
            sides.append(np.concatenate([values, np.full(pause, np.nan), values]))
            continue
        smooth = _smooth(values, trace.fs)
        rest, _ = _rest_and_range(trace, smooth)
        still = rest + rng.normal(0, np.nanstd(values - smooth), pause)
        sides.append(np.concatenate([values, still, values]))
    t_s = np.arange(len(sides[0])) / trace.fs
    return Case(replace(trace, t_s=t_s, left=sides[0], right=sides[1]), 2 * trace.reps)


VARIANTS = (
    as_is,
    _limited_range(0.5),
    _limited_range(0.3),
    _limited_range(0.15),
    never_at_full_rest,
    back_part_way_between_reps,
    _paced(3.0),
    _paced(0.5),
    _joined(0.5),
    _joined(0.9),
    out_of_view_at_rest,
    two_sets,
)


def _cases() -> list[Any]:
    return [
        pytest.param(name, variant, path, id=f"{name}-{variant.__name__}-{path}")
        for name, variant, path in product(TRACES, VARIANTS, PATHS)
    ]


@pytest.mark.parametrize(("name", "variant", "path"), _cases())
def test_a_real_trace_counts_as_labelled_however_the_patient_moves(name, variant, path):
    case = variant(_trace(name))
    counter = PATHS[path](case.trace, **case.options)
    got, expected = len(counter.reps), case.expected
    assert got == expected, f"partials: {[partial.reason for partial in counter.partials]}"


# --- patients who do not exercise ----------------------------------------------------------------
def still(n: int, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At rest, with 2 deg of landmark noise."""
    return rng.normal(0, 2.0, n), rng.normal(0, 2.0, n)


def fidgeting(n: int, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Small movements of each limb (up to 6 deg either way, 0.5-2 Hz) and weight shifted from
    foot to foot (2 deg, one side bends as the other straightens), with 2 deg of noise. Smoothed,
    15-18 deg from lowest to highest over 30 s: under every floor (20 deg, 30 for jumping jacks)."""
    t_s = np.arange(n) / fs
    weight = 2 * np.sin(2 * np.pi * 0.15 * t_s + rng.uniform(0, 2 * np.pi))
    sides = []
    for sign in (1, -1):
        # Smooth moves between random positions, each taking half a period of 0.5-2 Hz.
        knots_s = np.cumsum(rng.uniform(0.25, 1.0, 2 * round(IDLE_S)))
        moves = np.interp(t_s, knots_s, rng.uniform(-6, 6, len(knots_s)))
        sides.append(moves + sign * weight + rng.normal(0, 2.0, n))
    return sides[0], sides[1]


def _idle(trace: Trace, behaviour: Callable[..., tuple[np.ndarray, np.ndarray]]) -> Trace:
    """IDLE_S of a patient behaving so around the trace's rest level, at the trace's rate."""
    n = round(IDLE_S * trace.fs)
    moves = behaviour(n, trace.fs, np.random.default_rng(11))
    sides = []
    for values, move in zip(trace.angles, moves, strict=True):
        if not _seen(values):
            sides.append(np.full(n, np.nan))
            continue
        rest, _ = _rest_and_range(trace, _smooth(values, trace.fs))
        sides.append(rest + move)
    return replace(trace, t_s=np.arange(n) / trace.fs, left=sides[0], right=sides[1])


def _idle_cases() -> list[Any]:
    return [
        pytest.param(name, behaviour, path, id=f"{name}-{behaviour.__name__}-{path}")
        for name, behaviour, path in product(TRACES, (still, fidgeting), PATHS)
    ]


@pytest.mark.parametrize(("name", "behaviour", "path"), _idle_cases())
def test_a_still_or_fidgeting_patient_counts_nothing(name, behaviour, path):
    trace = _idle(_trace(name), behaviour)
    floor = trace.exercise.thresholds.min_amplitude_deg
    assert all(np.ptp(_smooth(v, trace.fs)) < floor for v in trace.angles if _seen(v))
    assert PATHS[path](trace).reps == []


@pytest.mark.parametrize("path", PATHS)
def test_a_patient_slowly_settling_into_the_knees_counts_nothing(path):
    # Standing still, then over 8 s sinking 12 deg into the knees (under the squat's 20 deg
    # floor), and staying there: posture, not a repetition.
    trace = _trace("Vaidansh__squat1")
    fs = trace.fs
    t_s = np.arange(0, 20, 1 / fs)
    rest, _ = _rest_and_range(trace, _smooth(trace.right, fs))
    settling = rest + np.clip((t_s - 4) * 1.5, 0, 12)
    noise = np.random.default_rng(5).normal(0, 1.0, (2, len(t_s)))
    left, right = settling + noise
    assert PATHS[path](replace(trace, t_s=t_s, left=left, right=right)).reps == []
