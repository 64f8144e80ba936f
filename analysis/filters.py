"""Smoothing of joint-angle signals (degrees over time).

Every array here is 1-D, shape (T,), one float angle in degrees per sample. NaN marks a gap: a
sample whose landmarks were not visible enough, never a guessed number. Short gaps may be bridged
by interpolation; longer ones stay gaps, because bridging them would invent motion that was never
observed.

Gap length is measured the same way everywhere: the time between the valid samples on either side
of it, i.e. (k + 1) / fs for k missing samples at a constant rate fs.
"""

import math

import numpy as np

# Sample times are floats (e.g. i / fs), so a gap of exactly max_gap_s may compute a hair longer.
# Human joint motion during exercise has little above a few Hz; above that it is landmark jitter.
SMOOTHING_CUTOFF_HZ = 4.0
DEFAULT_FPS = 30.0  # for recordings that do not state their frame rate
_TIME_TOLERANCE_S = 1e-9


class OneEuroFilter:
    """Causal One Euro filter (Casiez et al. 2012) for live use: one sample at a time, variable
    sample times.

    A first-order low-pass whose cutoff rises with the signal's speed: low jitter when the joint is
    still, little lag when it moves. Cutoffs in Hz, beta in Hz per (degree/second).
    """

    def __init__(
        self,
        min_cutoff_hz: float = 1.0,
        beta: float = 0.02,
        derivative_cutoff_hz: float = 1.0,
        max_gap_s: float = 0.5,
    ) -> None:
        if min_cutoff_hz <= 0 or derivative_cutoff_hz <= 0 or beta < 0 or max_gap_s <= 0:
            raise ValueError("cutoffs and max_gap_s must be positive, beta non-negative")
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.derivative_cutoff_hz = derivative_cutoff_hz
        self.max_gap_s = max_gap_s
        self.reset()

    def reset(self) -> None:
        """Forget all samples; the next call starts afresh and may use any time."""
        self._last_t_s: float | None = None  # last call, gap or not: time must keep increasing
        self._valid_t_s: float | None = None  # last valid sample
        self._value = 0.0  # filtered value at _valid_t_s, degrees
        self._speed = 0.0  # filtered derivative, degrees/second

    def __call__(self, t_s: float, value: float) -> float:
        """Filtered value at time t_s. A NaN input returns NaN and, if the time since the last
        valid sample exceeds max_gap_s when the next valid sample arrives, the filter restarts
        from that sample (no smoothing across long gaps). Non-increasing t_s raises ValueError.

        Infinite values are treated as gaps too: one would otherwise poison the state for good.
        """
        if not math.isfinite(t_s):
            raise ValueError(f"sample time must be finite, got {t_s}")
        if self._last_t_s is not None and t_s <= self._last_t_s:
            raise ValueError(f"sample time {t_s} s is not after the previous {self._last_t_s} s")
        self._last_t_s = t_s
        if not math.isfinite(value):
            return math.nan
        if self._valid_t_s is None or t_s - self._valid_t_s > self.max_gap_s + _TIME_TOLERANCE_S:
            self._valid_t_s, self._value, self._speed = t_s, float(value), 0.0
            return self._value
        dt_s = t_s - self._valid_t_s
        # Speed from the previous *filtered* value, as in the paper: while the output lags behind
        # a movement the estimated speed stays high, which raises the cutoff and closes the lag.
        speed = (value - self._value) / dt_s
        self._speed += _smoothing_factor(self.derivative_cutoff_hz, dt_s) * (speed - self._speed)
        cutoff_hz = self.min_cutoff_hz + self.beta * abs(self._speed)
        # prev + a * (x - prev) rather than a * x + (1 - a) * prev: a constant input then stays
        # exactly constant, and with 0 < a <= 1 the output can never overshoot the input.
        self._value += _smoothing_factor(cutoff_hz, dt_s) * (value - self._value)
        self._valid_t_s = t_s
        return self._value


def _smoothing_factor(cutoff_hz: float, dt_s: float) -> float:
    """Weight of the new sample in a first-order low-pass with this cutoff sampled after dt_s."""
    r = 2.0 * math.pi * cutoff_hz * dt_s
    return r / (r + 1.0)


def _as_signal(values: np.ndarray) -> np.ndarray:
    signal = np.asarray(values, dtype=float)
    if signal.ndim != 1:
        raise ValueError(f"expected a 1-D signal of shape (T,), got shape {signal.shape}")
    return signal


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) ranges where the boolean mask of shape (T,) is True."""
    # +1 where a run starts, -1 one past its end; padding closes runs touching either edge.
    edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(start), int(stop)) for start, stop in zip(starts, stops, strict=True)]


def gap_free_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges of consecutive non-NaN samples.

    values: shape (T,). Returns the runs in order; [] when every sample is NaN or T == 0.
    """
    return _true_runs(~np.isnan(_as_signal(values)))


def fill_short_gaps(values: np.ndarray, max_gap_samples: int) -> np.ndarray:
    """Linear interpolation across interior NaN runs of at most max_gap_samples; longer runs and
    leading/trailing NaNs stay NaN. Returns a new array.

    values: shape (T,). Returns shape (T,), float. max_gap_samples counts missing samples; 0 fills
    nothing. Leading and trailing NaNs have a neighbour on one side only, so there is nothing to
    interpolate between.
    """
    if max_gap_samples < 0:
        raise ValueError(f"max_gap_samples must be >= 0, got {max_gap_samples}")
    filled = _as_signal(values).copy()
    valid = ~np.isnan(filled)
    if not valid.any():
        return filled
    index = np.arange(filled.size)
    interpolated = np.interp(index, index[valid], filled[valid])
    for start, stop in _true_runs(~valid):
        if start > 0 and stop < filled.size and stop - start <= max_gap_samples:
            filled[start:stop] = interpolated[start:stop]
    return filled


def butterworth_zero_phase(
    values: np.ndarray,
    fs_hz: float,
    cutoff_hz: float = 6.0,
    order: int = 2,
    max_gap_s: float = 0.25,
) -> np.ndarray:
    """Offline: fill gaps up to max_gap_s, then a zero-phase (forward-backward,
    scipy.signal.butter + filtfilt) low-pass on each gap-free run separately; longer gaps stay NaN.

    values: shape (T,), sampled at a constant fs_hz. Returns a new array of shape (T,), NaN exactly
    where the gaps longer than max_gap_s are. The forward-backward pass doubles the attenuation
    (order 2 acts as order 4, -6 dB at cutoff_hz) and cancels the phase, so peaks keep their times.

    Runs too short for filtfilt's default padding (at most 3 * (order + 1) samples) are still
    filtered, with the padding reduced to the run's length minus one, so that short runs are not
    left jittery next to smooth ones; a single-sample run comes back unchanged. If cutoff_hz is at
    least 0.95 * Nyquist the gap-filled signal is returned unfiltered.
    """
    if fs_hz <= 0 or cutoff_hz <= 0 or order < 1 or max_gap_s < 0:
        raise ValueError("fs_hz and cutoff_hz must be positive, order >= 1, max_gap_s >= 0")
    # k missing samples span (k + 1) / fs between their valid neighbours (see module docstring).
    max_missing = max(0, math.floor(max_gap_s * fs_hz + _TIME_TOLERANCE_S) - 1)
    filled = fill_short_gaps(values, max_missing)
    if cutoff_hz >= 0.95 * fs_hz / 2:
        # Almost nothing left to remove, and the coefficients become ill-conditioned near Nyquist.
        return filled
    # Imported here: scipy.signal takes ~1.5 s to load, and live pose workers never need it.
    from scipy.signal import butter, filtfilt

    b, a = butter(order, cutoff_hz, fs=fs_hz)
    default_padlen = 3 * (order + 1)  # filtfilt's own default, 3 * max(len(a), len(b))
    smoothed = filled.copy()
    for start, stop in gap_free_runs(filled):
        # Each run alone: filtering across a NaN would spread it over the whole signal.
        padlen = min(default_padlen, stop - start - 1)
        smoothed[start:stop] = filtfilt(b, a, filled[start:stop], padtype="constant", padlen=padlen)
    return smoothed


def sample_rate_hz(t_s: np.ndarray) -> float:
    """The rate of samples at times `t_s` (DEFAULT_FPS for fewer than two)."""
    if len(t_s) < 2:
        return DEFAULT_FPS
    return float(1 / np.median(np.diff(t_s)))


def smooth_recorded(values: np.ndarray, fs_hz: float) -> np.ndarray:
    """The smoothing of a recorded video's angles: zero-phase, at SMOOTHING_CUTOFF_HZ."""
    return butterworth_zero_phase(values, fs_hz=fs_hz, cutoff_hz=SMOOTHING_CUTOFF_HZ)
