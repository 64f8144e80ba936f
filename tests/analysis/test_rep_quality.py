"""Every counted repetition carries its quality grade: synthetic angle signals and measures with
exact answers through RepetitionCounter (and a synthetic skeleton through count_repetitions), and
analysis.quality's plausibility() and worst() at, under and over each limit."""

import math
from collections.abc import Collection, Sequence

import numpy as np
import pytest

from analysis.counting import RepetitionCounter, Sample
from analysis.exercises import BY_SLUG, ExerciseDefinition
from analysis.kinematics import PoseSeries
from analysis.landmarks import Landmark
from analysis.quality import (
    Grade,
    Quality,
    plausibility,
    worst,
)
from analysis.repetitions import RepetitionMetrics
from analysis.video import count_repetitions

FS = 30.0
NAN = math.nan
SQUAT = BY_SLUG["squat"]  # upward (knee normal range 0-135), both legs together
EXTENSION = BY_SLUG["seated_knee_extension"]  # downward (towards 0), one side
HEEL_SLIDE = BY_SLUG["heel_slide"]  # upward, one side
LUNGE = BY_SLUG["lunge"]  # alternating
JUMPING_JACK = BY_SLUG["jumping_jack"]  # shoulder abduction (0-180), up to 1500 deg/s

Measures = dict[str, float]


def good_measures(
    *, seen: float = 1.0, obliquity_deg: float = 10.0, segment_px: float = 100.0
) -> Measures:
    """One frame's quality measures, the same on both sides."""
    return {
        f"quality_{name}_{side}": value
        for side in ("left", "right")
        for name, value in (
            ("seen", seen),
            ("obliquity_deg", obliquity_deg),
            ("segment_px", segment_px),
        )
    }


def excursion(rest: float, peak: float, *, hold: int = 0, pause: int = 30) -> np.ndarray:
    """rest -> peak -> rest, a half cosine each way of 46 frames at 30 frames/s (the peak frame is
    exactly `peak`), `hold` more frames at the peak, `pause` frames at rest before and after."""
    up = rest + (peak - rest) * (1 - np.cos(np.linspace(0, np.pi, 46))) / 2
    return np.concatenate(
        [np.full(pause, float(rest)), up, np.full(hold, float(peak)), up[-2::-1]]
        + [np.full(pause, float(rest))]
    )


# A squat 5 -> 90 -> 5: the counter's repetition runs from its onset (frame 33) to where it is
# back within a quarter of its rise (frame 105), 73 frames.
CLEAN = excursion(5, 90)
REP_FIRST, REP_LAST = 33, 105


def count(
    exercise: ExerciseDefinition,
    right: np.ndarray,
    left: np.ndarray | None = None,
    *,
    measures: Measures | Sequence[Measures] | None = None,
    side: str = "right",
) -> RepetitionCounter:
    """Feed the counter one sample per frame (left unseen unless given)."""
    left = np.full_like(right, NAN) if left is None else left
    if measures is None:
        measures = good_measures()
    per_frame = [measures] * len(right) if isinstance(measures, dict) else list(measures)
    counter = RepetitionCounter(exercise, side=side)
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        counter.update(Sample(i / FS, float(a), float(b), per_frame[i]))
    counter.finish()
    return counter


def only_rep(counter: RepetitionCounter) -> RepetitionMetrics:
    assert counter.partials == []
    (rep,) = counter.reps
    return rep


def hiding(signal: np.ndarray, frames: Collection[int]) -> np.ndarray:
    hidden = signal.copy()
    hidden[list(frames)] = NAN
    return hidden


def frames_inside(count: int) -> set[int]:
    """`count` frames strictly inside the clean squat's repetition, on the way down and up, its
    first, last and peak (frame 75) frames kept."""
    down = min(count, 21)
    return set(range(40, 40 + down)) | set(range(80, 80 + count - down))


# --- a repetition seen well ----------------------------------------------------------------------


def test_a_clean_repetition_with_good_measures_is_good_without_reasons() -> None:
    rep = only_rep(count(SQUAT, CLEAN))
    assert (rep.min_deg, rep.max_deg, rep.rom_deg) == (5.0, 90.0, 85.0)
    assert (rep.start_s, rep.end_s) == (REP_FIRST / FS, 3.5)
    assert (rep.quality, rep.quality_reasons) == ("good", [])


def test_a_repetition_without_quality_measures_is_fair_for_what_was_not_measured() -> None:
    rep = only_rep(count(SQUAT, CLEAN, measures={}))
    assert rep.quality == "fair"
    assert rep.quality_reasons == [
        "whether the knee was seen was not measured",
        "limb plane not measured",
        "size in the picture not measured",
    ]


@pytest.mark.parametrize(
    ("segment_px", "grade", "reasons"),
    [
        (60.0, "good", []),
        (59.0, "fair", ["small in the picture: limb segment 59 px"]),
        (40.0, "fair", ["small in the picture: limb segment 40 px"]),
        (39.0, "poor", ["small in the picture: limb segment 39 px"]),
    ],
)
def test_a_person_small_in_the_picture_lowers_the_grade(
    segment_px: float, grade: str, reasons: list[str]
) -> None:
    rep = only_rep(count(SQUAT, CLEAN, measures=good_measures(segment_px=segment_px)))
    assert (rep.quality, rep.quality_reasons) == (grade, reasons)
    assert rep.max_deg == 90.0  # the angle is kept: the grade only says how far to trust it


@pytest.mark.parametrize(
    ("obliquity_deg", "grade", "reasons"),
    [
        (30.0, "good", []),
        (31.0, "fair", ["limb plane 31° from the camera's view"]),
        (60.0, "fair", ["limb plane 60° from the camera's view"]),
        (61.0, "poor", ["limb plane 61° from the camera's view"]),
    ],
)
def test_a_limb_moving_out_of_the_image_plane_lowers_the_grade(
    obliquity_deg: float, grade: str, reasons: list[str]
) -> None:
    rep = only_rep(count(SQUAT, CLEAN, measures=good_measures(obliquity_deg=obliquity_deg)))
    assert (rep.quality, rep.quality_reasons) == (grade, reasons)


def test_only_the_measured_sides_frames_are_judged() -> None:
    left_hidden_and_small = {
        **good_measures(),
        "quality_seen_left": 0.0,
        "quality_segment_px_left": 10.0,
        "quality_obliquity_deg_left": 80.0,
    }
    rep = only_rep(count(SQUAT, CLEAN, measures=left_hidden_and_small))
    assert (rep.side, rep.quality, rep.quality_reasons) == ("right", "good", [])


# --- hidden frames -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hidden", "grade", "reasons"),
    [
        (7, "good", []),  # 66 of 73 frames seen: 90.4%
        (8, "fair", ["knee hidden in 11% of the frames"]),  # 65 of 73: 89.0%
        (29, "fair", ["knee hidden in 40% of the frames"]),  # 44 of 73: 60.3%
        (36, "fair", ["knee hidden in 49% of the frames"]),  # 37 of 73: 50.7%
        (37, "poor", ["knee hidden in 51% of the frames"]),  # 36 of 73: 49.3%
    ],
)
@pytest.mark.parametrize("how", ["missing", "guessed"])
def test_frames_hidden_inside_a_repetition_lower_its_seen_share(
    hidden: int, grade: str, reasons: list[str], how: str
) -> None:
    """Missing: the knee not seen at all, so no angle and no sample (the counter bridges the gap,
    and the frames it bridged count as not seen). Guessed: an angle from landmarks BlazePose did
    not see. Either way the same frames are hidden, and the share is exact."""
    frames = frames_inside(hidden)
    assert len(frames) == hidden and min(frames) > REP_FIRST and max(frames) < REP_LAST
    if how == "missing":
        counter = count(SQUAT, hiding(CLEAN, frames))
    else:
        measures = [good_measures(seen=0.0 if i in frames else 1.0) for i in range(len(CLEAN))]
        counter = count(SQUAT, CLEAN, measures=measures)
    rep = only_rep(counter)
    # The repetition itself is the same: its first, last and peak frames were seen.
    assert (rep.start_s, rep.end_s, rep.min_deg, rep.max_deg) == (REP_FIRST / FS, 3.5, 5.0, 90.0)
    assert (rep.quality, rep.quality_reasons) == (grade, reasons)


def test_a_gap_in_the_rest_between_repetitions_does_not_count_against_either() -> None:
    twice = np.concatenate([CLEAN, CLEAN])  # rest 30, rep, rest 60 (frames 121-180), rep, rest 30
    counter = count(SQUAT, hiding(twice, range(135, 160)))  # 25 frames (0.83 s) at rest hidden
    assert counter.partials == []
    frames = [(round(rep.start_s * FS), round(rep.end_s * FS)) for rep in counter.reps]
    assert frames == [(REP_FIRST, REP_LAST), (151 + REP_FIRST, 151 + REP_LAST)]
    assert [(rep.quality, rep.quality_reasons) for rep in counter.reps] == [("good", [])] * 2


def test_a_return_hidden_up_to_the_rest_counts_against_the_repetition_it_ends() -> None:
    # Hidden from frame 101 to 125: the return is seen again only at rest, at frame 126, which
    # ends the repetition: 25 of its 94 frames (33-126) hidden.
    counter = count(SQUAT, hiding(CLEAN, range(101, 126)))
    rep = only_rep(counter)
    assert (rep.start_s, rep.end_s) == (REP_FIRST / FS, 126 / FS)
    assert (rep.quality, rep.quality_reasons) == ("fair", ["knee hidden in 27% of the frames"])


# --- values the body cannot produce --------------------------------------------------------------


def spiked(signal: np.ndarray, jump_deg: float) -> np.ndarray:
    """One frame in the middle of the hold at the peak jumps by `jump_deg`."""
    glitch = signal.copy()
    glitch[int(np.argmax(signal)) + 5] += jump_deg  # the hold's 10 frames start at argmax
    return glitch


HELD = excursion(5, 90, hold=9)  # 10 frames at 90: the last of the rise and 9 held


def test_a_one_frame_glitch_faster_than_the_body_moves_is_poor() -> None:
    # 30 deg in one frame at 30 frames/s: 900 deg/s, over the squat's 800.
    rep = only_rep(count(SQUAT, spiked(HELD, 30.0)))
    assert (rep.max_deg, rep.peak_velocity_dps) == (120.0, 900.0)
    assert rep.quality == "poor"
    assert rep.quality_reasons == ["implausible speed: 900°/s (a glitch, not movement)"]


def test_a_jump_just_under_the_speed_limit_is_plausible() -> None:
    rep = only_rep(count(SQUAT, spiked(HELD, 26.0)))  # 780 deg/s
    assert (rep.max_deg, rep.peak_velocity_dps) == (116.0, 780.0)
    assert (rep.quality, rep.quality_reasons) == ("good", [])


def test_a_jumping_jack_may_move_at_900_degrees_a_second_but_not_1530() -> None:
    arms = excursion(40, 120, hold=9)
    rep = only_rep(count(JUMPING_JACK, spiked(arms, 30.0), spiked(arms, 30.0)))
    assert (rep.max_deg, rep.peak_velocity_dps) == (150.0, 900.0)
    assert (rep.quality, rep.quality_reasons) == ("good", [])
    rep = only_rep(count(JUMPING_JACK, spiked(arms, 51.0), spiked(arms, 51.0)))
    assert (rep.max_deg, rep.peak_velocity_dps) == (171.0, 1530.0)
    assert rep.quality == "poor"
    assert rep.quality_reasons == ["implausible speed: 1530°/s (a glitch, not movement)"]


@pytest.mark.parametrize(
    ("peak", "grade", "reasons"),
    [
        (135.0, "good", []),
        (145.0, "fair", ["145° is beyond the normal knee range (≤ 135°)"]),
        (150.0, "fair", ["150° is beyond the normal knee range (≤ 135°)"]),
        (155.0, "poor", ["implausible angle: 155° is beyond the knee's range"]),
    ],
)
def test_a_squat_peaking_beyond_the_normal_knee_range(
    peak: float, grade: str, reasons: list[str]
) -> None:
    rep = only_rep(count(SQUAT, excursion(5, peak)))
    assert rep.max_deg == peak
    assert (rep.quality, rep.quality_reasons) == (grade, reasons)


@pytest.mark.parametrize(
    ("peak", "grade", "reason"),
    [
        (0.0, "good", None),
        (-10.0, "fair", "-10° is beyond the normal knee range"),
        (-15.0, "fair", "-15° is beyond the normal knee range"),
        (-20.0, "poor", "implausible angle: -20° is beyond the knee's range"),
    ],
)
def test_a_knee_extension_peaking_beyond_full_extension(
    peak: float, grade: str, reason: str | None
) -> None:
    """A downward exercise: its peak is its lowest angle, beyond the normal range below 0."""
    rep = only_rep(count(EXTENSION, excursion(80, peak)))
    assert (rep.min_deg, rep.max_deg) == (peak, 80.0)
    assert rep.quality == grade
    if reason is None:
        assert rep.quality_reasons == []
    else:
        (found,) = rep.quality_reasons
        assert found.startswith(reason)


def test_the_other_leg_moving_twice_as_far_on_a_one_sided_exercise_is_poor() -> None:
    right = excursion(5, 65)
    left = excursion(5, 125)
    rep = only_rep(count(HEEL_SLIDE, right, left))
    assert (rep.side, rep.max_deg, rep.rom_deg) == ("right", 65.0, 60.0)
    assert rep.quality == "poor"
    # The repetition starts at its onset frame, where the left knee is at 6.3: it moved 118.7.
    assert rep.quality_reasons == ["the other side moved more (119° against 60°)"]


def test_the_other_leg_moving_as_far_as_the_ratio_allows_is_fine() -> None:
    right = excursion(5, 65)
    left = excursion(5, 5 + 88)  # 88 - 1 at the onset: 87 < 1.5 x 60
    rep = only_rep(count(HEEL_SLIDE, right, left))
    assert (rep.quality, rep.quality_reasons) == ("good", [])


@pytest.mark.parametrize("exercise", [SQUAT, LUNGE], ids=["both_together", "alternating"])
def test_the_other_leg_moving_more_is_no_fault_when_both_legs_exercise(
    exercise: ExerciseDefinition,
) -> None:
    rep = only_rep(count(exercise, excursion(5, 65), excursion(5, 125)))
    assert (rep.quality, rep.quality_reasons) == ("good", [])


def test_the_other_leg_hidden_says_nothing_about_it() -> None:
    right = excursion(5, 65)
    left = excursion(5, 125)
    left[: REP_FIRST + 20] = NAN  # the left knee unseen in 20 of the repetition's 73 frames
    rep = only_rep(count(HEEL_SLIDE, right, left))
    assert (rep.symmetry_pct, rep.quality, rep.quality_reasons) == (None, "good", [])


def test_every_finding_is_named_and_the_worst_sets_the_grade() -> None:
    # Small in the picture (fair) and beyond the normal range (fair): fair, both reasons.
    rep = only_rep(count(SQUAT, excursion(5, 145), measures=good_measures(segment_px=50.0)))
    assert rep.quality == "fair"
    assert rep.quality_reasons == [
        "small in the picture: limb segment 50 px",
        "145° is beyond the normal knee range (≤ 135°)",
    ]
    # ... and a glitch (poor) on top.
    rep = only_rep(count(SQUAT, spiked(HELD, 30.0), measures=good_measures(segment_px=50.0)))
    assert rep.quality == "poor"
    assert rep.quality_reasons == [
        "small in the picture: limb segment 50 px",
        "implausible speed: 900°/s (a glitch, not movement)",
    ]


# --- through the video analysis ------------------------------------------------------------------


def heel_slide_poses(
    bends_deg: np.ndarray,
    *,
    segment_px: float = 100.0,
    tilt_deg: float = 0.0,
    hidden: Collection[int] = (),
) -> PoseSeries:
    """A body lying side-on, its left leg straight and its right knee bent by `bends_deg` in a
    plane tilted `tilt_deg` out of the image plane, thigh and shank `segment_px` long in the
    picture; the right leg unseen in the `hidden` frames."""
    frames = len(bends_deg)
    pixels = np.full((frames, 33, 2), NAN)
    world = np.full((frames, 33, 3), NAN)
    visibility = np.zeros((frames, 33))
    tilt = np.radians(tilt_deg)
    across = np.array([np.cos(tilt), 0.0, np.sin(tilt)])
    down = np.array([0.0, 1.0, 0.0])
    for i, right_bend in enumerate(bends_deg):
        for side, bend in (("left", 0.0), ("right", float(right_bend))):
            b = np.radians(bend)
            knee = 0.4 * down
            points = {
                "shoulder": (np.array([0.0, -0.5, 0.0]), [300.0, 300.0 - 2.2 * segment_px]),
                "hip": (np.zeros(3), [300.0, 300.0 - segment_px]),
                "knee": (knee, [300.0, 300.0]),
                "ankle": (
                    knee + 0.4 * (np.sin(b) * across + np.cos(b) * down),
                    [300.0 + segment_px * np.sin(b), 300.0 + segment_px * np.cos(b)],
                ),
            }
            for point, (xyz, xy) in points.items():
                landmark = Landmark[f"{side}_{point}".upper()]
                world[i, landmark], pixels[i, landmark] = xyz, xy
                visibility[i, landmark] = 0.0 if side == "right" and i in hidden else 1.0
    return PoseSeries(np.arange(frames) / FS, pixels, world, visibility)


SLIDE = excursion(5, 80)


@pytest.mark.parametrize(
    ("segment_px", "grade", "reasons"),
    [
        (100.0, "good", []),
        (50.0, "fair", ["small in the picture: limb segment 50 px"]),
        (30.0, "poor", ["small in the picture: limb segment 30 px"]),
    ],
)
def test_the_video_analysis_grades_a_person_small_in_the_picture(
    segment_px: float, grade: str, reasons: list[str]
) -> None:
    side, reps, partials = count_repetitions(
        heel_slide_poses(SLIDE, segment_px=segment_px), HEEL_SLIDE, side="right"
    )
    assert (side, partials) == ("right", [])
    (rep,) = reps
    assert (rep.min_deg, rep.max_deg) == (5.0, 80.0)
    assert (rep.quality, rep.quality_reasons) == (grade, reasons)


def test_the_video_analysis_grades_a_leg_bending_across_the_cameras_view() -> None:
    _, reps, _ = count_repetitions(heel_slide_poses(SLIDE, tilt_deg=70.0), HEEL_SLIDE, side="right")
    (rep,) = reps
    assert (rep.quality, rep.quality_reasons) == ("poor", ["limb plane 70° from the camera's view"])


def test_the_video_analysis_counts_frames_of_a_hidden_knee_as_not_seen() -> None:
    # 20 frames (0.67 s, too long to fill in) of the repetition's 73 hidden on the way back.
    hidden = range(80, 100)
    _, reps, partials = count_repetitions(
        heel_slide_poses(SLIDE, hidden=hidden), HEEL_SLIDE, side="right"
    )
    assert partials == []
    (rep,) = reps
    assert (rep.start_s, rep.end_s) == (REP_FIRST / FS, 3.5)
    assert (rep.quality, rep.quality_reasons) == ("fair", ["knee hidden in 27% of the frames"])


# --- plausibility() and worst() ------------------------------------------------------------------


def judge(
    exercise: ExerciseDefinition,
    *,
    peak_deg: float = 90.0,
    peak_velocity_dps: float = 100.0,
    rom_deg: float = 60.0,
    other_rom_deg: float | None = None,
) -> list[tuple[Grade, str]]:
    return plausibility(
        exercise,
        peak_deg=peak_deg,
        peak_velocity_dps=peak_velocity_dps,
        rom_deg=rom_deg,
        other_rom_deg=other_rom_deg,
    )


@pytest.mark.parametrize(
    ("peak", "expected"),
    [
        (134.0, []),
        (135.0, []),
        (135.5, [(Grade.FAIR, "136° is beyond the normal knee range (≤ 135°)")]),
        (150.0, [(Grade.FAIR, "150° is beyond the normal knee range (≤ 135°)")]),
        (150.5, [(Grade.POOR, "implausible angle: 150° is beyond the knee's range")]),
        (170.0, [(Grade.POOR, "implausible angle: 170° is beyond the knee's range")]),
    ],
)
def test_an_upward_peak_at_under_and_over_the_normal_range(
    peak: float, expected: list[tuple[Grade, str]]
) -> None:
    assert judge(SQUAT, peak_deg=peak) == expected


@pytest.mark.parametrize(
    ("peak", "grade", "shown"),
    [
        (1.0, None, ""),
        (0.0, None, ""),
        (-1.0, Grade.FAIR, "-1°"),
        (-15.0, Grade.FAIR, "-15°"),
        (-15.5, Grade.POOR, "-16°"),
    ],
)
def test_a_downward_peak_at_under_and_over_the_normal_range(
    peak: float, grade: Grade | None, shown: str
) -> None:
    found = judge(EXTENSION, peak_deg=peak)
    if grade is None:
        assert found == []
        return
    ((got, reason),) = found
    assert got is grade
    if grade is Grade.POOR:
        assert reason == f"implausible angle: {shown} is beyond the knee's range"
    else:
        assert reason.startswith(f"{shown} is beyond the normal knee range")


@pytest.mark.parametrize(
    ("exercise", "velocity", "poor"),
    [
        (SQUAT, 799.0, False),
        (SQUAT, 800.0, False),
        (SQUAT, 800.4, True),
        (JUMPING_JACK, 1500.0, False),
        (JUMPING_JACK, 1501.0, True),
    ],
)
def test_a_peak_velocity_at_under_and_over_the_exercises_limit(
    exercise: ExerciseDefinition, velocity: float, poor: bool
) -> None:
    peak = exercise.default_target_deg  # within the normal range
    expected = (
        [(Grade.POOR, f"implausible speed: {velocity:.0f}°/s (a glitch, not movement)")]
        if poor
        else []
    )
    assert judge(exercise, peak_deg=peak, peak_velocity_dps=velocity) == expected


@pytest.mark.parametrize(
    ("rom", "other", "poor"),
    [
        (60.0, 89.0, False),
        (60.0, 90.0, False),
        (60.0, 90.5, True),
        (60.0, 120.0, True),
        (60.0, None, False),
        # A side that barely moved is compared as if it moved 1 deg.
        (0.0, 1.5, False),
        (0.0, 1.6, True),
    ],
)
def test_the_other_side_on_a_one_sided_exercise_at_under_and_over_the_ratio(
    rom: float, other: float | None, poor: bool
) -> None:
    found = judge(HEEL_SLIDE, rom_deg=rom, other_rom_deg=other)
    if not poor:
        assert found == []
        return
    assert found == [(Grade.POOR, f"the other side moved more ({other:.0f}° against {rom:.0f}°)")]


@pytest.mark.parametrize("exercise", [SQUAT, LUNGE], ids=["both_together", "alternating"])
def test_the_other_side_is_not_judged_when_both_sides_exercise(
    exercise: ExerciseDefinition,
) -> None:
    assert judge(exercise, rom_deg=30.0, other_rom_deg=120.0) == []


def test_every_finding_is_listed_in_order() -> None:
    found = judge(
        HEEL_SLIDE, peak_deg=155.0, peak_velocity_dps=900.0, rom_deg=60.0, other_rom_deg=100.0
    )
    assert found == [
        (Grade.POOR, "implausible angle: 155° is beyond the knee's range"),
        (Grade.POOR, "implausible speed: 900°/s (a glitch, not movement)"),
        (Grade.POOR, "the other side moved more (100° against 60°)"),
    ]


@pytest.mark.parametrize(
    ("quality", "more", "expected"),
    [
        (Quality(Grade.GOOD, ()), [], Quality(Grade.GOOD, ())),
        (Quality(Grade.GOOD, ()), [(Grade.FAIR, "b")], Quality(Grade.FAIR, ("b",))),
        (Quality(Grade.FAIR, ("a",)), [], Quality(Grade.FAIR, ("a",))),
        (Quality(Grade.FAIR, ("a",)), [(Grade.FAIR, "b")], Quality(Grade.FAIR, ("a", "b"))),
        (
            Quality(Grade.FAIR, ("a",)),
            [(Grade.POOR, "b"), (Grade.FAIR, "c")],
            Quality(Grade.POOR, ("a", "b", "c")),
        ),
        # A poor grade is not raised by fair findings.
        (Quality(Grade.POOR, ("a",)), [(Grade.FAIR, "b")], Quality(Grade.POOR, ("a", "b"))),
        (Quality(Grade.GOOD, ()), [(Grade.POOR, "b")], Quality(Grade.POOR, ("b",))),
    ],
)
def test_worst_keeps_the_worse_grade_and_every_reason(
    quality: Quality, more: list[tuple[Grade, str]], expected: Quality
) -> None:
    assert worst(quality, more) == expected
