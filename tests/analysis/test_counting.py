"""Repetition counting on a real knee-angle trace (motion capture of 5 squats) and on
synthetic angle signals with exact answers."""

from pathlib import Path

import numpy as np
import pytest

from analysis.counting import JOINT_PREFIX, RepetitionCounter, Sample
from analysis.exercises import BY_SLUG
from analysis.filters import butterworth_zero_phase

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SQUAT = BY_SLUG["squat"]


def _mot_column(name: str) -> tuple[np.ndarray, np.ndarray]:
    lines = (FIXTURES / "squats1_videoAndMocap.mot").read_text().splitlines()
    header = lines.index("endheader") + 1
    columns = lines[header].split("\t")
    table = np.loadtxt(lines[header + 1 :])
    return table[:, 0], table[:, columns.index(name)]


def _count(exercise, t, left, right, *, side="right", **options):
    counter = RepetitionCounter(exercise, side=side, **options)
    events = [
        counter.update(Sample(float(ti), float(a), float(b)))
        for ti, a, b in zip(t, left, right, strict=True)
    ]
    events.append(counter.finish())
    return counter, [event for event in events if event is not None]


def _squat_knee(t, noise_sd=0.0, seed=0):
    _, knee = _mot_column("knee_angle_r")
    return knee + np.random.default_rng(seed).normal(0, noise_sd, len(knee))


def test_the_real_squat_trace_counts_five_squats():
    t, knee = _mot_column("knee_angle_r")
    counter, _ = _count(SQUAT, t, np.full_like(knee, np.nan), knee)
    assert len(counter.reps) == 5 and counter.partials == []
    bottoms = [rep.start_s + rep.eccentric_s for rep in counter.reps]
    assert bottoms == pytest.approx([1.0, 2.5, 4.0, 5.6, 7.2], abs=0.3)
    for rep in counter.reps:
        assert 75 <= rep.max_deg <= 90 and rep.min_deg < 15
        assert rep.rom_deg == pytest.approx(rep.max_deg - rep.min_deg, abs=0.11)
        # Sitting down into a squat is the eccentric phase.
        assert rep.eccentric_s + rep.concentric_s == pytest.approx(rep.duration_s, abs=1e-3)
    assert [rep.index for rep in counter.reps] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("seed", range(5))
def test_noise_dropouts_and_jitter_do_not_change_the_count(seed):
    t, knee = _mot_column("knee_angle_r")
    rng = np.random.default_rng(seed)
    # 30 fps with timestamp jitter, Gaussian noise, 10% dropped frames and two 0.2 s dropouts.
    times = np.arange(0, t[-1], 1 / 30) + rng.uniform(
        -0.008, 0.008, len(np.arange(0, t[-1], 1 / 30))
    )
    times = np.sort(np.clip(times, 0, t[-1]))
    angle = np.interp(times, t, knee) + rng.normal(0, 3.0, len(times))
    angle[rng.random(len(times)) < 0.10] = np.nan
    for start in rng.uniform(0.5, 7.0, 2):
        angle[(times > start) & (times < start + 0.2)] = np.nan
    smoothed = butterworth_zero_phase(angle, fs_hz=30, cutoff_hz=4)
    counter, _ = _count(SQUAT, times, np.full_like(smoothed, np.nan), smoothed)
    assert len(counter.reps) == 5


def test_the_live_one_euro_path_also_counts_five():
    from analysis.filters import OneEuroFilter

    t, knee = _mot_column("knee_angle_r")
    noisy = knee + np.random.default_rng(7).normal(0, 2.0, len(knee))
    live = OneEuroFilter(min_cutoff_hz=1.0, beta=0.05)
    smoothed = np.array([live(float(ti), float(a)) for ti, a in zip(t, noisy, strict=True)])
    counter, _ = _count(SQUAT, t, np.full_like(knee, np.nan), smoothed)
    assert len(counter.reps) == 5


def _cosine_reps(rest, peak, period_s, count, fs=30.0, pause_s=1.0):
    """`count` smooth excursions rest -> peak -> rest, with pauses at rest before and after."""
    one = rest + (peak - rest) * (1 - np.cos(np.linspace(0, 2 * np.pi, int(period_s * fs)))) / 2
    pause = np.full(int(pause_s * fs), float(rest))
    signal = np.concatenate([pause] + [np.concatenate([one, pause]) for _ in range(count)])
    return np.arange(len(signal)) / fs, signal


def test_a_raise_counts_upwards_and_a_knee_extension_downwards():
    t, raise_deg = _cosine_reps(10, 150, 3.0, 4)
    counter, _ = _count(BY_SLUG["shoulder_flexion"], t, raise_deg, raise_deg, side="left")
    assert len(counter.reps) == 4
    assert counter.reps[0].max_deg == pytest.approx(150, abs=0.5)
    # Raising is the concentric phase: from the motion's onset to the top, about half of 3 s.
    assert counter.reps[0].concentric_s == pytest.approx(1.5, abs=0.15)
    # Seated knee extension goes from about 80 deg down to full extension.
    t, knee = _cosine_reps(80, 5, 3.0, 3)
    counter, _ = _count(BY_SLUG["seated_knee_extension"], t, knee, knee)
    assert len(counter.reps) == 3
    assert counter.reps[0].min_deg == pytest.approx(5, abs=0.5)
    assert counter.reps[0].rom_deg == pytest.approx(75, abs=0.5)


def test_a_movement_far_short_of_the_sets_own_range_is_a_partial_with_its_reason():
    t, full = _cosine_reps(5, 95, 2.0, 3)
    _, small = _cosine_reps(5, 30, 2.0, 1)  # 25 deg: above the floor, under 40 % of 90
    knee = np.concatenate([full, small])
    times = np.arange(len(knee)) / 30
    counter, _ = _count(SQUAT, times, knee, knee)
    assert len(counter.reps) == 3 and len(counter.partials) == 1
    (partial,) = counter.partials
    assert partial.reason == "short" and partial.peak_deg == pytest.approx(30, abs=0.5)
    assert partial.needed_deg == pytest.approx(0.4 * 90, abs=0.5)


def test_fidgeting_at_rest_is_ignored():
    t, knee = _cosine_reps(5, 18, 1.0, 5)  # 13 deg: under the squat's 20 deg floor
    counter, _ = _count(SQUAT, t, knee, knee)
    assert counter.reps == [] and counter.partials == []


def test_a_repetition_faster_than_the_minimum_duration_does_not_count():
    t, knee = _cosine_reps(5, 90, 0.5, 2)
    counter, _ = _count(SQUAT, t, knee, knee)
    assert counter.reps == []


def test_a_stream_joined_mid_squat_does_not_count_its_first_ascent():
    # Starts at the bottom of a squat: the ascent alone is not a repetition; the next one is.
    t, knee = _cosine_reps(5, 90, 3.0, 1, pause_s=1.0)
    start_mid = np.concatenate([np.linspace(90, 5, 45), knee])
    times = np.arange(len(start_mid)) / 30
    counter, _ = _count(SQUAT, times, start_mid, start_mid)
    assert len(counter.reps) == 1 and counter.reps[0].start_s > 1.5
    assert [partial.reason for partial in counter.partials] == []  # never rose: nothing to say


def test_a_stream_joined_on_the_way_up_counts_once_most_of_the_way_was_seen():
    t, knee = _cosine_reps(5, 90, 3.0, 2, pause_s=1.0)
    from_rest = knee[30:]  # the pause dropped: the first squat from its start
    mostly = knee[30 + 12 :]  # about a fifth of the descent missed
    barely = knee[30 + 25 :]  # more than half of the descent missed
    for signal, counted in ((from_rest, 2), (mostly, 2), (barely, 1)):
        times = np.arange(len(signal)) / 30
        counter, _ = _count(SQUAT, times, signal, signal)
        assert len(counter.reps) == counted
    assert counter.partials[0].reason == "joined"


def test_a_stream_ending_during_a_repetition_reports_a_partial():
    t, knee = _cosine_reps(5, 90, 3.0, 1)
    cut = int(np.argmax(knee)) + 10  # cut off during the ascent
    counter, events = _count(SQUAT, t[:cut], knee[:cut], knee[:cut])
    assert counter.reps == [] and len(counter.partials) == 1


def test_a_long_gap_during_a_repetition_drops_it_instead_of_guessing():
    t, knee = _cosine_reps(5, 90, 3.0, 2)
    knee = knee.copy()
    first_rep = (t > 1.5) & (t < 4.0)  # 2.5 s unseen: longer than the 2 s bridged
    knee[first_rep] = np.nan
    counter, _ = _count(SQUAT, t, knee, knee)
    assert len(counter.reps) == 1 and counter.reps[0].start_s > 4.0


def test_holds_are_timed_only_inside_the_target_band():
    fs = 30
    rise = np.linspace(5, 95, 10)  # its last 2 samples are in the band (>= target 90 - 10)
    hold = np.full(3 * fs, 95.0)
    dip = np.array([95.0, 70.0])  # leaves the band: the hold timer stops
    hold2 = np.full(fs, 88.0)  # back in the band for 1 s: a shorter hold
    fall = np.linspace(88, 5, 45)
    knee = np.concatenate([np.full(fs, 5.0), rise, hold, dip, hold2, fall, np.full(fs, 5.0)])
    t = np.arange(len(knee)) / fs
    counter, _ = _count(SQUAT, t, knee, knee, target_deg=90)
    (rep,) = counter.reps
    # 2 + 90 + 1 consecutive samples in the band: 92 intervals of 1/30 s.
    assert rep.hold_s == pytest.approx(92 / fs, abs=1e-3)


def test_alternating_lunges_count_every_lunge_once_on_its_leading_leg():
    fs = 30
    t, bend = _cosine_reps(5, 95, 2.0, 1, pause_s=0.0)
    rest = np.full(fs, 5.0)
    back_knee = 5 + (bend - 5) * 0.8  # the trailing knee bends too, a little less
    left = np.concatenate([rest, bend, rest, back_knee, rest, bend, rest])
    right = np.concatenate([rest, back_knee, rest, bend, rest, back_knee, rest])
    times = np.arange(len(left)) / fs
    counter, _ = _count(BY_SLUG["lunge"], times, left, right)
    assert [rep.side for rep in counter.reps] == ["left", "right", "left"]


def test_both_sides_give_a_symmetry_figure():
    t, left = _cosine_reps(10, 150, 3.0, 1)
    right = 10 + (left - 10) * 0.8
    counter, _ = _count(BY_SLUG["front_raise"], t, left, right, side="left")
    assert counter.reps[0].symmetry_pct == pytest.approx(80.0, abs=0.5)


def test_the_stored_trace_has_ten_values_per_second():
    t, knee = _cosine_reps(5, 90, 3.0, 1)
    counter, _ = _count(SQUAT, t, knee, knee)
    rep = counter.reps[0]
    assert len(rep.trace_deg) == pytest.approx(rep.duration_s * 10 + 1, abs=1)
    assert max(rep.trace_deg) == pytest.approx(rep.max_deg, abs=1.0)


def test_a_first_repetition_is_expected_to_cover_the_smaller_of_textbook_target_and_own_range():
    heel_slide = BY_SLUG["heel_slide"]  # textbook 20 -> 50 deg: 30 deg, floor 15
    assert RepetitionCounter(heel_slide, side="right").needed_deg == 15
    squat = BY_SLUG["squat"]  # textbook 20 -> 60 deg: 40 deg; 40 % of it under the 20 deg floor
    assert RepetitionCounter(squat, side="right", target_deg=90).needed_deg == 20
    shoulder = BY_SLUG["shoulder_abduction"]  # textbook 30 -> 90 deg: 60 deg
    assert RepetitionCounter(shoulder, side="right").needed_deg == pytest.approx(24)
    # A frozen shoulder reaching 55 deg in its last sessions, and a target of 70 deg.
    own = RepetitionCounter(shoulder, side="right", target_deg=70, expected_rom_deg=55)
    assert own.needed_deg == pytest.approx(20)  # 40 % of 40 (target 70 - rest 30) is under 20
    # Seen once, the patient's own repetitions set the range.
    t, raise_deg = _cosine_reps(5, 60, 3.0, 3)
    counter, _ = _count(shoulder, t, raise_deg, raise_deg, side="left", expected_rom_deg=55)
    assert len(counter.reps) == 3 and counter.needed_deg == pytest.approx(0.4 * 55, abs=0.5)


def test_each_repetition_keeps_the_course_of_its_joint_angles():
    """Joint measures (JOINT_PREFIX) come out per repetition at the trace rate, bridged over the
    frames where the joint was unseen; a joint seen too little is left out."""
    t, knee = _mot_column("knee_angle_r")
    _, hip = _mot_column("hip_flexion_r")
    hip_seen = hip.copy()
    hip_seen[::3] = np.nan  # a third of the frames unseen: still a trace
    counter = RepetitionCounter(SQUAT, side="right")
    for i, ti in enumerate(t):
        measures = {
            f"{JOINT_PREFIX}right_hip": float(hip_seen[i]),
            f"{JOINT_PREFIX}left_elbow": float(np.nan if i % 4 else 90.0),  # seen 1 frame in 4
        }
        counter.update(Sample(float(ti), float("nan"), float(knee[i]), measures))
    counter.finish()
    assert len(counter.reps) == 5
    for rep in counter.reps:
        assert set(rep.joint_traces_deg) == {"right_hip"}
        trace = rep.joint_traces_deg["right_hip"]
        assert abs(len(trace) - len(rep.trace_deg)) <= 1
        inside = (t >= rep.start_s) & (t <= rep.end_s)
        assert max(trace) == pytest.approx(np.nanmax(hip_seen[inside]), abs=3)
