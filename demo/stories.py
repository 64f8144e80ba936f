"""The demo clinic: patient stories as frozen data and a deterministic history generator.

Pure Python and NumPy (no Django): `generate_history` turns one `PatientStory` into plain
`SessionSample`s with their repetitions and pain reports; the `demo_clinic` management command
turns those into model rows. Angles are clinical degrees (0 deg = anatomical position). Days are
counted from the first day of the history, `HISTORY_DAYS` before today; times are local wall-clock
times (naive datetimes) in the clinic's time zone.
"""

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.exercises import BY_SLUG, ExerciseDefinition, FormFault
from analysis.form import rule_for, threshold_for
from analysis.repetitions import RepetitionMetrics

SEED = 20250611
HISTORY_DAYS = 56  # 8 weeks of completed sessions before today
DAYS_AHEAD = 28  # the assignments run on this long after today
TRACE_POINTS = 30
SHORT_SET_CHANCE = 0.15  # a set ends one repetition short
PARTIAL_REP_CHANCE = 0.12  # a session with one partial repetition (counted, not stored)
FATIGUE_DEG_PER_REP = 0.15  # the peak drifts back towards the start pose within a set
TRACE_NOISE_DEG = 0.4
DEMO_POOR_SHARE = 0.03  # of repetitions graded poor (analysis.quality)
DEMO_FAIR_SHARE = 0.12
VELOCITY_SMOOTHING = (0.8, 0.95)  # a smoothed trace peaks below the ideal half-cosine velocity
URL = "http://127.0.0.1:8000"


# --- Who is in the demo --------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    role: str
    email: str
    password: str


@dataclass(frozen=True)
class TherapistStory:
    email: str
    password: str
    first_name: str
    last_name: str
    title: str
    clinic: str


# --- How a patient's numbers move over the weeks -------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """The peak angle of a repetition over the history: a diminishing-returns curve that reaches
    `end_deg` `plateau_days` before today and stays there."""

    start_deg: float
    end_deg: float
    curvature: float = 3.0  # higher: faster early gains, flatter later
    plateau_days: int = 0
    session_sd_deg: float = 2.0  # day-to-day variation
    rep_sd_deg: float = 1.5  # repetition-to-repetition variation

    def peak_at(self, day: float) -> float:
        x = min(max(day / (HISTORY_DAYS - self.plateau_days), 0.0), 1.0)
        share = (1 - math.exp(-self.curvature * x)) / (1 - math.exp(-self.curvature))
        return self.start_deg + (self.end_deg - self.start_deg) * share


@dataclass(frozen=True)
class Faults:
    """Form flags (codes of the exercise's definition), as a chance per repetition; `late_rate`
    applies from `late_days` before today on."""

    codes: tuple[str, ...]
    rate: float = 0.01
    late_rate: float = 0.0
    late_days: int = 0

    def rate_on(self, day: int) -> float:
        late = self.late_days and day >= HISTORY_DAYS - self.late_days
        return self.late_rate if late else self.rate


@dataclass(frozen=True)
class LineStory:
    """One prescribed exercise and how the patient performs it."""

    slug: str
    side: str
    sets: int
    reps: int
    target_deg: float
    per_week: int
    start_pose_deg: float  # the angle between repetitions (e.g. ~85 deg sitting for extensions)
    progress: Progress
    faults: Faults
    hold_s: int = 0
    rest_s: int = 60
    first_day: int = 0  # the day the patient starts doing this exercise
    effort_borg: float = 3.0
    pain_offset: float = 0.0
    notes: str = ""

    def __post_init__(self) -> None:
        definition = BY_SLUG[self.slug]
        # Only flags the analysis raises in the exercise's own camera view.
        raisable = {fault.code for fault in definition.form_faults if _raisable(fault, definition)}
        if not set(self.faults.codes) <= raisable:
            raise ValueError(
                f"{self.slug}: form faults the analysis cannot raise "
                f"{set(self.faults.codes) - raisable}"
            )

    def planned_on(self, day: int) -> bool:
        """`per_week` days spread evenly over every week, from `first_day` on."""
        spread = (day + 1) * self.per_week // 7 > day * self.per_week // 7
        return day >= self.first_day and spread

    def peak_limits(self) -> tuple[float, float]:
        angle = BY_SLUG[self.slug].angle
        return angle.normal_min_deg, angle.normal_max_deg


def _raisable(fault: FormFault, exercise: ExerciseDefinition) -> bool:
    rule = rule_for(fault.code)
    if rule is None or threshold_for(fault, exercise) is None:
        return False
    return rule.view in (None, exercise.camera_view)


@dataclass(frozen=True)
class PainStory:
    """Pain (NRS 0-10) moving from `start` to `end` over the history, plus `rise_by` points
    over the last `rise_days` days."""

    start: float
    end: float
    rise_by: float = 0.0
    rise_days: int = 0
    sd: float = 0.6
    report_chance: float = 0.85
    comments: tuple[str, ...] = ()
    rise_comments: tuple[str, ...] = ()
    comment_chance: float = 0.08
    rise_comment_chance: float = 0.3

    def rising_on(self, day: int) -> bool:
        return self.rise_days > 0 and day >= HISTORY_DAYS - self.rise_days

    def level_at(self, day: int) -> float:
        base = self.start + (self.end - self.start) * day / HISTORY_DAYS
        if not self.rising_on(day):
            return base
        return base + self.rise_by * (day - (HISTORY_DAYS - self.rise_days) + 1) / self.rise_days


@dataclass(frozen=True)
class Habits:
    adherence: float  # chance that a planned training day is done
    start_hours: tuple[float, ...]  # usual local start times, hours after midnight
    hour_sd: float = 0.6
    missed_last_days: int = 0  # no sessions at all in these last days


@dataclass(frozen=True)
class PatientStory:
    first_name: str
    last_name: str
    email: str
    age: int
    birth_month: int
    birth_day: int
    condition: str
    affected_side: str
    notes: str
    protocol_name: str
    protocol_notes: str
    lines: tuple[LineStory, ...]
    habits: Habits
    pain: PainStory

    def date_of_birth(self, today: datetime.date) -> datetime.date:
        birthday_passed = (today.month, today.day) >= (self.birth_month, self.birth_day)
        year = today.year - self.age - (0 if birthday_passed else 1)
        return datetime.date(year, self.birth_month, self.birth_day)


# --- What the generator returns -------------------------------------------------------------------


@dataclass(frozen=True)
class PainSample:
    pain_nrs: int
    effort_borg: float
    comment: str
    delay_s: float  # reported this long after the session ended


@dataclass(frozen=True)
class SessionSample:
    line: int  # position of the prescription in the protocol
    side: str
    started_at: datetime.datetime  # naive, local time
    length_s: float
    reps: list[RepetitionMetrics]
    partial_reps: int
    pain: PainSample | None

    @property
    def ended_at(self) -> datetime.datetime:
        return self.started_at + datetime.timedelta(seconds=self.length_s)


# --- The generator --------------------------------------------------------------------------------


def history_start(today: datetime.date) -> datetime.date:
    return today - datetime.timedelta(days=HISTORY_DAYS)


def generate_history(
    story: PatientStory, *, today: datetime.date, seed: int, borg_scale: Sequence[float]
) -> list[SessionSample]:
    """Every completed session of the story, oldest first. The same seed gives the same numbers."""
    rng = np.random.default_rng(seed)
    first, samples = history_start(today), []
    for day in range(HISTORY_DAYS - story.habits.missed_last_days):
        planned = [n for n, line in enumerate(story.lines) if line.planned_on(day)]
        if not planned or rng.random() >= story.habits.adherence:
            continue
        clock = _start_time(first + datetime.timedelta(days=day), story.habits, rng)
        for n in planned:
            sample = _session(story, n, day, clock, rng, borg_scale)
            samples.append(sample)
            clock = sample.ended_at + datetime.timedelta(seconds=float(rng.uniform(30, 180)))
    return samples


def _start_time(day: datetime.date, habits: Habits, rng: np.random.Generator) -> datetime.datetime:
    hour = float(rng.choice(habits.start_hours)) + float(rng.normal(0, habits.hour_sd))
    minutes = round(min(max(hour, 7.0), 20.5) * 60)
    return datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(
        minutes=minutes, seconds=int(rng.integers(0, 60))
    )


def _session(
    story: PatientStory,
    n: int,
    day: int,
    started_at: datetime.datetime,
    rng: np.random.Generator,
    borg_scale: Sequence[float],
) -> SessionSample:
    line = story.lines[n]
    reps = _reps(line, day, rng)
    return SessionSample(
        line=n,
        side=line.side,
        started_at=started_at,
        length_s=round(reps[-1].end_s + float(rng.uniform(3, 10)), 1),
        reps=reps,
        partial_reps=int(rng.random() < PARTIAL_REP_CHANCE),
        pain=_pain(story.pain, line, day, rng, borg_scale),
    )


def _reps(line: LineStory, day: int, rng: np.random.Generator) -> list[RepetitionMetrics]:
    session_peak = line.progress.peak_at(day) + rng.normal(0, line.progress.session_sd_deg)
    tempo_s = float(rng.uniform(2.4, 3.8))  # this session's movement time per repetition
    clock, reps = float(rng.uniform(4, 12)), []
    for set_number in range(1, line.sets + 1):
        count = line.reps - int(rng.random() < SHORT_SET_CHANCE)
        for index in range(1, count + 1):
            rep = _rep(line, day, set_number, index, clock, session_peak, tempo_s, rng)
            reps.append(rep)
            clock = rep.end_s + float(rng.uniform(0.3, 1.2))
        clock = reps[-1].end_s + line.rest_s * float(rng.uniform(0.95, 1.15))
    return reps


def _rep(
    line: LineStory,
    day: int,
    set_number: int,
    index: int,
    start_s: float,
    session_peak: float,
    tempo_s: float,
    rng: np.random.Generator,
) -> RepetitionMetrics:
    pose = line.start_pose_deg + float(rng.normal(0, 1.0))
    toward = 1.0 if session_peak > pose else -1.0
    peak = session_peak + float(rng.normal(0, line.progress.rep_sd_deg))
    peak = float(np.clip(peak - toward * FATIGUE_DEG_PER_REP * index, *line.peak_limits()))
    movement_s = float(np.clip(tempo_s * rng.uniform(0.85, 1.15), 2.0, 5.0))
    concentric_s = movement_s * float(rng.uniform(0.4, 0.5))
    eccentric_s = movement_s - concentric_s
    hold_s = line.hold_s * float(rng.uniform(0.9, 1.1))
    trace = _trace(pose, peak, concentric_s, hold_s, eccentric_s, rng)
    low, high = min(trace), max(trace)
    duration_s = round(concentric_s + hold_s + eccentric_s, 2)
    start_s = round(start_s, 2)
    return RepetitionMetrics(
        set_number=set_number,
        index=index,
        side=line.side,
        start_s=start_s,
        end_s=round(start_s + duration_s, 2),
        min_deg=low,
        max_deg=high,
        rom_deg=round(high - low, 1),
        duration_s=duration_s,
        concentric_s=round(concentric_s, 2),
        eccentric_s=round(eccentric_s, 2),
        peak_velocity_dps=_peak_velocity(high - low, min(concentric_s, eccentric_s), rng),
        form_flags=_flags(line.faults, day, rng),
        **_quality(day, set_number, index),
        trace_deg=trace,
    )


def _quality(day: int, set_number: int, index: int) -> dict[str, Any]:
    """Most repetitions measured well, some less so, a few poorly (as on real webcams). Drawn
    from a generator of their own, so that the rest of the story stays as it was."""
    draw = np.random.default_rng((day, set_number, index)).random()
    if draw < DEMO_POOR_SHARE:
        return {"quality": "poor", "quality_reasons": ["limb plane 64° from the camera's view"]}
    if draw < DEMO_POOR_SHARE + DEMO_FAIR_SHARE:
        segment = 45 + int(draw * 100) % 15
        return {
            "quality": "fair",
            "quality_reasons": [f"small in the picture: limb segment {segment} px"],
        }
    return {"quality": "good", "quality_reasons": []}


def _peak_velocity(rom_deg: float, fastest_phase_s: float, rng: np.random.Generator) -> float:
    """A half-cosine over a phase peaks at pi/2 times its mean speed; smoothing takes some off."""
    smoothing = float(rng.uniform(*VELOCITY_SMOOTHING))
    return round(math.pi / 2 * rom_deg / fastest_phase_s * smoothing, 1)


def _trace(
    pose: float,
    peak: float,
    concentric_s: float,
    hold_s: float,
    eccentric_s: float,
    rng: np.random.Generator,
) -> list[float]:
    """Half-cosine from the start pose to the peak, a hold, and back, sampled evenly."""
    t = np.linspace(0.0, concentric_s + hold_s + eccentric_s, TRACE_POINTS)
    up = (1 - np.cos(np.pi * np.clip(t / concentric_s, 0, 1))) / 2
    down = (1 - np.cos(np.pi * np.clip((t - concentric_s - hold_s) / eccentric_s, 0, 1))) / 2
    angle = pose + (peak - pose) * (up - down) + rng.normal(0, TRACE_NOISE_DEG, TRACE_POINTS)
    return [round(float(value), 1) for value in angle]


def _flags(faults: Faults, day: int, rng: np.random.Generator) -> list[str]:
    if not faults.codes or rng.random() >= faults.rate_on(day):
        return []
    return [str(rng.choice(faults.codes))]


def _pain(
    pain: PainStory,
    line: LineStory,
    day: int,
    rng: np.random.Generator,
    borg_scale: Sequence[float],
) -> PainSample | None:
    if rng.random() >= pain.report_chance:
        return None
    level = pain.level_at(day) + line.pain_offset + float(rng.normal(0, pain.sd))
    effort = line.effort_borg + float(rng.normal(0, 0.7))
    return PainSample(
        pain_nrs=int(np.clip(round(level), 0, 10)),
        effort_borg=min(borg_scale, key=lambda value: abs(value - effort)),
        comment=_comment(pain, day, rng),
        delay_s=float(rng.uniform(20, 240)),
    )


def _comment(pain: PainStory, day: int, rng: np.random.Generator) -> str:
    rising = pain.rising_on(day) and pain.rise_comments
    options, chance = (
        (pain.rise_comments, pain.rise_comment_chance)
        if rising
        else (pain.comments, pain.comment_chance)
    )
    if not options or rng.random() >= chance:
        return ""
    return str(rng.choice(options))


# --- The cast -------------------------------------------------------------------------------------

THERAPIST = TherapistStory(
    email="therapist@demo.clinic",
    password="demo-therapist",  # noqa: S106  # nosec B106 # the README's published demo login
    first_name="Maria",
    last_name="Keller",
    title="PT, DPT",
    clinic="Riverside Physiotherapy",
)
PATIENT_PASSWORD = "demo-patient"  # noqa: S105  # nosec B105 # the README's published demo login

_RARE = 0.01

ANNA = PatientStory(
    first_name="Anna",
    last_name="Schmidt",
    email="anna@demo.clinic",
    age=67,
    birth_month=3,
    birth_day=14,
    condition="Right total knee arthroplasty (6 weeks post-op at start)",
    affected_side="right",
    notes="Retired teacher, lives alone, one crutch outdoors. Goal: stairs and gardening.",
    protocol_name="TKA early rehab",
    protocol_notes="Flexion and quadriceps control after total knee arthroplasty.",
    lines=(
        LineStory(
            slug="heel_slide",
            side="right",
            sets=3,
            reps=10,
            hold_s=5,
            target_deg=110,
            per_week=5,
            start_pose_deg=3,
            progress=Progress(start_deg=76, end_deg=111, curvature=2.5, session_sd_deg=2.5),
            faults=Faults(codes=("heel_lift",), rate=_RARE),
            effort_borg=4.0,
        ),
        LineStory(
            slug="seated_knee_extension",
            side="right",
            sets=3,
            reps=10,
            hold_s=5,
            target_deg=0,
            per_week=5,
            start_pose_deg=86,
            progress=Progress(
                start_deg=14, end_deg=3, curvature=2.5, session_sd_deg=1.5, rep_sd_deg=1.0
            ),
            faults=Faults(codes=("extension_lag", "leans_back"), rate=_RARE),
        ),
        LineStory(
            slug="straight_leg_raise",
            side="right",
            sets=3,
            reps=10,
            target_deg=45,
            per_week=5,
            start_pose_deg=1,
            progress=Progress(start_deg=30, end_deg=44, curvature=2.0),
            faults=Faults(codes=("knee_bend", "trunk_lift"), rate=_RARE),
            effort_borg=3.0,
        ),
        LineStory(
            slug="sit_to_stand",
            side="both",
            sets=2,
            reps=8,
            target_deg=90,
            rest_s=90,
            per_week=3,
            start_pose_deg=4,
            progress=Progress(start_deg=82, end_deg=93, curvature=2.0),
            faults=Faults(codes=("trunk_lean", "uses_hands"), rate=0.03),
            effort_borg=5.0,
        ),
    ),
    habits=Habits(adherence=0.85, start_hours=(9.5, 10.5)),
    pain=PainStory(
        start=6,
        end=2,
        comments=("Knee stiff in the morning.", "Swelling a bit less today.", "Felt good."),
    ),
)

BEN = PatientStory(
    first_name="Ben",
    last_name="Okafor",
    email="ben@demo.clinic",
    age=54,
    birth_month=9,
    birth_day=2,
    condition="Left adhesive capsulitis (frozen shoulder)",
    affected_side="left",
    notes="Bus driver, type 2 diabetes. Night pain in the first weeks; works shifts.",
    protocol_name="Shoulder mobility",
    protocol_notes="Active range of motion within tolerable pain; no forcing at end range.",
    lines=(
        LineStory(
            slug="shoulder_flexion",
            side="left",
            sets=3,
            reps=12,
            target_deg=160,
            per_week=4,
            start_pose_deg=8,
            progress=Progress(
                start_deg=100,
                end_deg=138,
                curvature=2.0,
                plateau_days=20,
                session_sd_deg=3.0,
                rep_sd_deg=2.0,
            ),
            faults=Faults(codes=("shoulder_hiking", "trunk_lean"), rate=0.03),
            effort_borg=4.0,
        ),
        LineStory(
            slug="shoulder_abduction",
            side="left",
            sets=3,
            reps=12,
            target_deg=150,
            per_week=4,
            start_pose_deg=7,
            progress=Progress(
                start_deg=85,
                end_deg=114,
                curvature=2.0,
                plateau_days=20,
                session_sd_deg=3.0,
                rep_sd_deg=2.0,
            ),
            faults=Faults(codes=("shoulder_hiking", "trunk_lean"), rate=0.04),
            effort_borg=4.0,
        ),
        LineStory(
            slug="front_raise",
            side="both",
            sets=2,
            reps=10,
            target_deg=90,
            per_week=4,
            start_pose_deg=10,
            progress=Progress(start_deg=72, end_deg=88, curvature=2.0, plateau_days=20),
            faults=Faults(codes=("shoulder_hiking", "trunk_swing", "elbow_bend"), rate=0.02),
            effort_borg=3.0,
        ),
    ),
    habits=Habits(adherence=0.6, start_hours=(18.5, 20.0), hour_sd=0.5, missed_last_days=6),
    pain=PainStory(
        start=5,
        end=3,
        sd=0.8,
        report_chance=0.75,
        comments=("Stiff after the night shift.", "Pulling at the top of the movement."),
    ),
)

CARLA = PatientStory(
    first_name="Carla",
    last_name="Rossi",
    email="carla@demo.clinic",
    age=31,
    birth_month=11,
    birth_day=23,
    condition="Left patellofemoral pain syndrome",
    affected_side="left",
    notes="Recreational runner (10 km), paused running. Pain on stairs and after sitting.",
    protocol_name="Knee strength",
    protocol_notes="Quadriceps and hip abductor strengthening; lunges from week 7 if pain allows.",
    lines=(
        LineStory(
            slug="squat",
            side="both",
            sets=3,
            reps=12,
            target_deg=90,
            per_week=3,
            start_pose_deg=4,
            progress=Progress(start_deg=74, end_deg=94, curvature=2.0),
            faults=Faults(
                codes=("heels_rise", "trunk_lean"), rate=0.02, late_rate=0.1, late_days=10
            ),
            effort_borg=4.0,
        ),
        LineStory(
            slug="lunge",
            side="left",
            sets=3,
            reps=10,
            target_deg=90,
            per_week=3,
            start_pose_deg=5,
            first_day=HISTORY_DAYS - 12,
            progress=Progress(start_deg=82, end_deg=90, curvature=1.5),
            faults=Faults(
                codes=("knee_past_toes", "trunk_lean"), rate=0.15, late_rate=0.15, late_days=10
            ),
            effort_borg=5.0,
            pain_offset=1.0,
            notes="Start in week 7 once squats to 90 deg are pain-free.",
        ),
        LineStory(
            slug="standing_hip_abduction",
            side="left",
            sets=3,
            reps=15,
            target_deg=30,
            per_week=3,
            start_pose_deg=2,
            progress=Progress(
                start_deg=24, end_deg=31, curvature=2.0, session_sd_deg=1.2, rep_sd_deg=1.0
            ),
            faults=Faults(codes=("trunk_lean", "hip_hike"), rate=_RARE),
            effort_borg=3.0,
        ),
    ),
    habits=Habits(adherence=0.9, start_hours=(7.0, 18.5), hour_sd=0.4),
    pain=PainStory(
        start=3,
        end=2,
        rise_by=2.5,
        rise_days=10,
        comments=("No pain on the stairs today.", "Easy session."),
        rise_comments=(
            "Knee aches going downstairs after the lunges.",
            "Pain at the front of the knee during lunges.",
            "Sore the day after.",
        ),
    ),
)

PATIENTS: tuple[PatientStory, ...] = (ANNA, BEN, CARLA)

LOGINS: tuple[Login, ...] = (
    Login("therapist", THERAPIST.email, THERAPIST.password),
    *(Login("patient", story.email, PATIENT_PASSWORD) for story in PATIENTS),
)
