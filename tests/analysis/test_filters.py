"""Joint-angle smoothing: the live One Euro filter, the offline zero-phase Butterworth, and the gap
helpers both rely on. Signals are 1-D arrays of degrees; NaN is a gap."""

import math

import numpy as np
import pytest
from scipy.signal import butter, find_peaks, lfilter

from analysis.filters import (
    OneEuroFilter,
    butterworth_zero_phase,
    fill_short_gaps,
    gap_free_runs,
)

NAN = math.nan


def _times(fs_hz: float, duration_s: float) -> np.ndarray:
    return np.arange(round(fs_hz * duration_s)) / fs_hz


def _run_live(f: OneEuroFilter, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.array([f(float(t), float(v)) for t, v in zip(times, values, strict=True)])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _lag_samples(reference: np.ndarray, output: np.ndarray) -> int:
    """Shift of output relative to reference at the cross-correlation peak (> 0: output late)."""
    xc = np.correlate(output - output.mean(), reference - reference.mean(), "full")
    return int(np.argmax(xc)) - (reference.size - 1)


# --- One Euro -----------------------------------------------------------------------------------


def test_one_euro_keeps_a_constant_signal_exactly_constant() -> None:
    times = _times(30, 3)
    out = _run_live(OneEuroFilter(), times, np.full(times.size, 37.3))
    assert np.all(out == 37.3)


def test_one_euro_follows_a_step_quickly_causally_and_without_overshoot() -> None:
    times = _times(30, 3)
    values = np.where(times >= 1.0, 10.0, 0.0)
    out = _run_live(OneEuroFilter(), times, values)
    assert np.all(out[times < 1.0] == 0.0)  # nothing of the step leaks into the past
    assert np.any(out[(times >= 1.0) & (times <= 1.5)] > 9.5)
    assert np.all(out <= 10.0 + 1e-9)


def test_one_euro_brings_a_noisy_sine_closer_to_the_clean_one() -> None:
    times = _times(30, 20)
    clean = 30 * np.sin(2 * np.pi * 0.5 * times)
    noise = np.random.default_rng(0).normal(0, 2, times.size)
    # Tuned for this fast movement (peak ~94 deg/s). With the defaults (beta 0.02) the lag of a
    # causal filter dominates and the residual is ~1.6x the noise; a first-order causal smoother
    # cannot get far below ~0.83x on this signal, hence the modest bound.
    f = OneEuroFilter(min_cutoff_hz=0.5, beta=0.2, derivative_cutoff_hz=2.0)
    out = _run_live(f, times, clean + noise)
    assert _rms(out - clean) < 0.9 * _rms(noise)


def test_one_euro_with_defaults_strongly_reduces_jitter_while_the_joint_is_still() -> None:
    times = _times(30, 10)
    noise = np.random.default_rng(1).normal(0, 2, times.size)
    out = _run_live(OneEuroFilter(), times, 20.0 + noise)
    assert _rms(out[30:] - 20.0) < 0.5 * _rms(noise[30:])


def test_one_euro_returns_nan_for_a_nan_sample() -> None:
    f = OneEuroFilter()
    f(0.0, 10.0)
    assert math.isnan(f(1 / 30, NAN))


def test_one_euro_restarts_after_a_gap_longer_than_max_gap() -> None:
    f = OneEuroFilter(max_gap_s=0.5)
    for t in _times(30, 1):
        f(float(t), 10.0)
    for t in 1.0 + _times(30, 1):
        assert math.isnan(f(float(t), NAN))
    assert f(2.0, 50.0) == 50.0


def test_one_euro_smooths_across_a_gap_shorter_than_max_gap() -> None:
    f = OneEuroFilter(max_gap_s=0.5)
    for t in _times(30, 1):
        f(float(t), 10.0)
    f(1.0, NAN)
    assert 10.0 < f(1.2, 50.0) < 50.0


@pytest.mark.parametrize("later_t_s", [0.5, 1.0])
def test_one_euro_rejects_time_that_does_not_increase(later_t_s: float) -> None:
    f = OneEuroFilter()
    f(1.0, 10.0)
    with pytest.raises(ValueError):
        f(later_t_s, 10.0)


def test_one_euro_accepts_any_time_again_after_reset() -> None:
    f = OneEuroFilter()
    f(5.0, 10.0)
    f.reset()
    assert f(0.0, 3.0) == 3.0


# --- Butterworth --------------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff_hz", [6.0, 2.0])
def test_butterworth_has_no_phase_lag_on_a_sine(cutoff_hz: float) -> None:
    times = _times(30, 10)
    sine = np.sin(2 * np.pi * 0.5 * times)
    out = butterworth_zero_phase(sine, fs_hz=30, cutoff_hz=cutoff_hz)
    assert _lag_samples(sine, out) == 0
    in_peaks, out_peaks = find_peaks(sine)[0], find_peaks(out)[0]
    assert in_peaks.size == out_peaks.size == 5
    assert np.all(np.abs(in_peaks - out_peaks) <= 1)


@pytest.mark.parametrize("cutoff_hz", [6.0, 2.0])
def test_the_lag_measurement_does_catch_a_causal_butterworth(cutoff_hz: float) -> None:
    # Guards the test above: the same filter run forward only must show up as late.
    times = _times(30, 10)
    sine = np.sin(2 * np.pi * 0.5 * times)
    b, a = butter(2, cutoff_hz, fs=30)
    assert _lag_samples(sine, lfilter(b, a, sine)) >= 1


def test_butterworth_keeps_a_step_symmetric_around_the_step() -> None:
    # The step passes through its midpoint 5 at sample m, so zero phase means out[m] stays at 5.
    m = 60
    step = np.concatenate([np.zeros(m), [5.0], np.full(m, 10.0)])
    out = butterworth_zero_phase(step, fs_hz=30)
    assert out[m] == pytest.approx(5.0, abs=0.5)
    k = np.arange(1, m)
    np.testing.assert_allclose(out[m - k] + out[m + k], 10.0, atol=1e-9)


def test_butterworth_strongly_attenuates_10_hz_noise() -> None:
    times = _times(100, 10)
    movement = 30 * np.sin(2 * np.pi * 0.5 * times)
    noise = 3 * np.sin(2 * np.pi * 10 * times)
    out = butterworth_zero_phase(movement + noise, fs_hz=100, cutoff_hz=6)
    assert _rms(out - movement) / _rms(noise) < 0.2


def test_butterworth_bridges_a_short_gap() -> None:
    # 6 missing samples at 30 Hz: 7/30 s = 0.233 s between the valid neighbours, within 0.25 s.
    values = 30 * np.sin(2 * np.pi * 0.5 * _times(30, 4))
    values[50:56] = NAN
    out = butterworth_zero_phase(values, fs_hz=30, max_gap_s=0.25)
    assert not np.isnan(out).any()


def test_butterworth_keeps_a_long_gap_and_filters_each_side_alone() -> None:
    times = _times(30, 10)
    values = 30 * np.sin(2 * np.pi * 0.5 * times)
    values += np.random.default_rng(2).normal(0, 2, times.size)
    values[100:107] = NAN  # 8/30 s = 0.267 s between valid neighbours: just over 0.25 s
    out = butterworth_zero_phase(values, fs_hz=30, max_gap_s=0.25)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(values))
    for side in (slice(0, 100), slice(107, None)):
        np.testing.assert_allclose(out[side], butterworth_zero_phase(values[side], fs_hz=30))
        assert not np.allclose(out[side], values[side])  # actually filtered


def test_butterworth_returns_all_nan_for_all_nan_input() -> None:
    out = butterworth_zero_phase(np.full(50, NAN), fs_hz=30)
    assert out.shape == (50,)
    assert np.isnan(out).all()


def test_butterworth_handles_inputs_too_short_for_the_default_padding() -> None:
    np.testing.assert_array_equal(butterworth_zero_phase(np.array([42.0]), fs_hz=30), [42.0])
    out = butterworth_zero_phase(np.array([10.0, 12.0, 11.0, 13.0, 12.0]), fs_hz=30)
    assert out.shape == (5,)
    assert np.isfinite(out).all()


def test_butterworth_with_cutoff_near_nyquist_only_fills_gaps() -> None:
    values = np.array([0.0, 1.0, NAN, 3.0, 2.0, 5.0, 1.0])
    out = butterworth_zero_phase(values, fs_hz=30, cutoff_hz=14.5)
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0, 3.0, 2.0, 5.0, 1.0])


# --- Gap helpers --------------------------------------------------------------------------------


def test_fill_short_gaps_interpolates_only_short_interior_gaps() -> None:
    values = np.array([NAN, 1.0, NAN, 3.0, NAN, NAN, NAN, 7.0, NAN])
    np.testing.assert_array_equal(
        fill_short_gaps(values, max_gap_samples=2),
        [NAN, 1.0, 2.0, 3.0, NAN, NAN, NAN, 7.0, NAN],
    )
    np.testing.assert_array_equal(
        fill_short_gaps(values, max_gap_samples=3),
        [NAN, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, NAN],
    )


def test_fill_short_gaps_returns_a_new_array_and_leaves_the_input_alone() -> None:
    values = np.array([1.0, NAN, 3.0])
    out = fill_short_gaps(values, max_gap_samples=0)
    np.testing.assert_array_equal(out, [1.0, NAN, 3.0])
    out[1] = 2.0
    assert math.isnan(values[1])


def test_fill_short_gaps_leaves_all_nan_input_nan() -> None:
    assert np.isnan(fill_short_gaps(np.full(4, NAN), max_gap_samples=10)).all()


@pytest.mark.parametrize(
    ("values", "runs"),
    [
        ([NAN, 1.0, 2.0, NAN, NAN, 3.0], [(1, 3), (5, 6)]),
        ([1.0, 2.0, 3.0], [(0, 3)]),
        ([1.0, NAN, 2.0], [(0, 1), (2, 3)]),
        ([NAN, NAN], []),
        ([], []),
    ],
)
def test_gap_free_runs_lists_the_stretches_without_nan(
    values: list[float], runs: list[tuple[int, int]]
) -> None:
    assert gap_free_runs(np.array(values, dtype=float)) == runs


def test_signals_must_be_one_dimensional() -> None:
    with pytest.raises(ValueError):
        gap_free_runs(np.zeros((3, 2)))
