"""Repetition quality grades through what a therapist reads: the progress numbers, the alerts,
the exports, the session page and the charts. Repetitions graded poor (an angle the camera could
not measure reliably) are left out of a session's peaks unless all of them were; such a session
raises no alert and is drawn hollow."""

import csv
import datetime
import io
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from analysis.alerts import Finding, form_flags, rom_findings
from analysis.charts import BLUE, ORANGE, rom_figure, session_figure
from analysis.progress import Progress, RomSeries, _weekly_rom, measure_of
from analysis.repetitions import RepetitionMetrics
from patients.models import Exercise, Prescription
from patients.services import assignment_save, protocol_save
from reports.exports import fhir_bundle, repetitions_csv
from sessions.models import ExerciseSession
from sessions.selectors import progress_of_patient
from sessions.services import rep_record, session_complete, session_start
from tests.conftest import World, client_for

MONDAY = datetime.date(2025, 3, 3)
LAST_DAY = MONDAY + datetime.timedelta(days=20)
HOLLOW = "rgba(0,0,0,0)"
HIDDEN = "knee hidden in 55% of the frames"
GLITCH = "implausible speed: 900°/s (a glitch, not movement)"
SMALL = "small in the picture: limb segment 50 px"


def rep(
    index: int,
    *,
    high: float,
    low: float = 5.0,
    quality: str = "good",
    reasons: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    set_number: int = 1,
) -> RepetitionMetrics:
    return RepetitionMetrics(
        set_number=set_number,
        index=index,
        side="right",
        start_s=3.0 * index,
        end_s=3.0 * index + 2,
        min_deg=low,
        max_deg=high,
        rom_deg=high - low,
        duration_s=2.0,
        peak_velocity_dps=90.0,
        form_flags=list(flags),
        quality=quality,
        quality_reasons=list(reasons),
        trace_deg=[low, (low + high) / 2, high, (low + high) / 2, low],
    )


def session_on(line: Prescription, day: int, reps: list[RepetitionMetrics]) -> ExerciseSession:
    """A completed session of `line` on MONDAY + `day`, 10:00 local time."""
    start = timezone.make_aware(
        datetime.datetime.combine(MONDAY + datetime.timedelta(days=day), datetime.time(10))
    )
    session = session_start(
        patient=line.protocol.assignments.get().patient, prescription=line, now=start
    )
    for data in reps:
        rep_record(session=session, data=data)
    return session_complete(session=session, now=start + datetime.timedelta(minutes=8))


@pytest.fixture
def lines(world: World) -> dict[str, Prescription]:
    base = {"side": "right", "sets": 1, "reps": 3, "hold_s": 0, "rest_s": 30, "notes": ""}
    protocol = protocol_save(
        therapist=world.a.therapist,
        protocol=None,
        name="Knee",
        notes="",
        lines=[
            {
                **base,
                "exercise": Exercise.objects.get(slug="heel_slide", owner=None),
                "target_rom_deg": 110.0,
                "sessions_per_week": 7,
            },
            {
                **base,
                "exercise": Exercise.objects.get(slug="seated_knee_extension", owner=None),
                "target_rom_deg": 0.0,
                "sessions_per_week": 7,
            },
        ],
    )
    patient = world.p
    patient.assignments.all().delete()
    assignment_save(patient=patient, protocol=protocol, start_date=MONDAY, end_date=LAST_DAY)
    slide, extension = protocol.prescriptions.order_by("position")
    return {"slide": slide, "extension": extension}


def progress_of(world: World) -> Progress:
    return progress_of_patient(patient=world.p, first=MONDAY, last=LAST_DAY)


def series_of(world: World, slug: str) -> RomSeries:
    (series,) = progress_of(world).sides_of(slug)
    return series


# --- the progress numbers ------------------------------------------------------------------------


def test_poor_reps_are_left_out_of_a_sessions_peaks(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(
        lines["slide"],
        0,
        [
            rep(1, high=90),
            rep(2, high=96, quality="fair", reasons=(SMALL,)),
            rep(3, high=125, quality="poor", reasons=(GLITCH,)),
        ],
    )
    slide = series_of(world, "heel_slide")
    (point,) = slide.points
    assert (point.best_deg, point.mean_deg, point.low_deg, point.high_deg) == (
        96.0,
        93.0,
        90.0,
        96.0,
    )
    assert (point.reps, point.poor_reps, point.poor) == (2, 1, False)
    assert (slide.poor_reps, slide.trusted_points) == (1, (point,))
    assert slide.baseline_deg == 93.0  # the first session ever, without its poor repetition


def test_a_downward_exercise_leaves_out_its_poor_lowest_peak_and_keeps_ungraded_reps(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(
        lines["extension"],
        0,
        [
            rep(1, low=8, high=85),
            rep(2, low=12, high=84, quality=""),  # recorded before grading: trusted
            rep(3, low=-25, high=86, quality="poor", reasons=("implausible angle",)),
        ],
    )
    extension = series_of(world, "seated_knee_extension")
    (point,) = extension.points
    assert (point.best_deg, point.mean_deg, point.low_deg, point.high_deg) == (8.0, 10.0, 8.0, 12.0)
    assert (point.reps, point.poor_reps, point.poor) == (2, 1, False)


def test_a_session_graded_poor_throughout_is_a_poor_point_with_the_numbers_of_all_its_reps(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(lines["slide"], 0, [rep(1, high=80), rep(2, high=84)])
    session_on(
        lines["slide"],
        1,
        [rep(1, high=100, quality="poor"), rep(2, high=110, quality="poor", reasons=(HIDDEN,))],
    )
    slide = series_of(world, "heel_slide")
    good, poor = slide.points
    assert (poor.best_deg, poor.mean_deg, poor.low_deg, poor.high_deg) == (
        110.0,
        105.0,
        100.0,
        110.0,
    )
    assert (poor.reps, poor.poor_reps, poor.poor) == (2, 2, True)
    assert (good.reps, good.poor_reps, good.poor) == (2, 0, False)
    assert (slide.poor_reps, slide.trusted_points) == (2, (good,))


def test_a_first_session_graded_poor_throughout_is_still_the_baseline(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(
        lines["slide"], 0, [rep(1, high=70, quality="poor"), rep(2, high=74, quality="poor")]
    )
    session_on(lines["slide"], 1, [rep(1, high=90)])
    assert series_of(world, "heel_slide").baseline_deg == 72.0


# --- alerts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_three", "falling"),
    [
        # Three sessions at 60: the last 5 average 74.8 against a median of 90 before.
        ([rep(1, high=60)], True),
        # The same sessions graded poor throughout: left out, the trusted ones keep rising.
        ([rep(1, high=60, quality="poor")], False),
        # A good repetition at 98 with two poor ones at 60: the session reached 98.
        (
            [rep(1, high=98), rep(2, high=60, quality="poor"), rep(3, high=60, quality="poor")],
            False,
        ),
    ],
    ids=["good", "poor", "mixed"],
)
def test_rom_falling_is_not_raised_by_poorly_measured_repetitions(
    world: World,
    lines: dict[str, Prescription],
    last_three: list[RepetitionMetrics],
    falling: bool,
) -> None:
    for day, high in enumerate(range(80, 100, 2)):  # 80, 82, ... 98: steady progress
        session_on(lines["slide"], day, [rep(1, high=high)])
    for day in range(10, 13):
        session_on(lines["slide"], day, last_three)
    slide = series_of(world, "heel_slide")
    assert len(slide.points) == 13
    expected = [
        Finding(
            "rom_falling",
            "rom_falling:heel_slide:right",
            "Heel slide (right): knee flexion reached 75° on average over the last 5 sessions, "
            "down from 90° over the 5 before (target 110°).",
        )
    ]
    assert rom_findings(slide) == (expected if falling else [])


@pytest.mark.parametrize("grade", ["good", "poor"])
def test_rom_stalled_is_not_raised_by_sessions_graded_poor_throughout(
    world: World, lines: dict[str, Prescription], grade: str
) -> None:
    # A knee extension stuck at 20 deg short of full extension for 10 sessions, the last 5 of
    # them graded `grade`: the 5 trusted sessions alone are too few to judge a plateau.
    for day in range(10):
        quality = grade if day >= 5 else "good"
        session_on(lines["extension"], day, [rep(1, low=20, high=85, quality=quality)])
    extension = series_of(world, "seated_knee_extension")
    stalled = Finding(
        "rom_stalled",
        "rom_stalled:seated_knee_extension:right",
        "Seated knee extension (right): knee flexion has stayed around 20° over the last 5 "
        "sessions (20° over the 5 before), 20° short of the 0° target.",
    )
    assert rom_findings(extension) == ([stalled] if grade == "good" else [])


@pytest.mark.parametrize("grade", ["good", "poor"])
def test_the_form_flag_alert_counts_only_flags_of_trusted_repetitions(
    world: World, lines: dict[str, Prescription], grade: str
) -> None:
    for day in range(3):
        session_on(
            lines["slide"],
            day,
            [
                rep(1, high=90),
                rep(2, high=92, quality=grade, flags=("heel_lift",)),
                rep(3, high=91, quality=grade, flags=("heel_lift",)),
            ],
        )
    slide = series_of(world, "heel_slide")
    if grade == "good":
        assert [(p.reps, p.flags) for p in slide.points] == [(3, {"heel_lift": 2})] * 3
        assert form_flags(slide) == [
            Finding(
                "form_flags",
                "form_flags:heel_slide:right:heel_lift",
                "Heel slide (right): heel lifts off the surface on 6 of 9 repetitions in the "
                "last 3 sessions.",
            )
        ]
    else:
        assert [(p.reps, p.flags) for p in slide.points] == [(1, {})] * 3
        assert form_flags(slide) == []


def test_a_session_graded_poor_throughout_does_not_count_among_the_last_sessions_for_form(
    world: World, lines: dict[str, Prescription]
) -> None:
    flagged = [rep(1, high=90, flags=("heel_lift",)), rep(2, high=91, flags=("heel_lift",))]
    session_on(lines["slide"], 0, flagged)
    session_on(lines["slide"], 1, flagged)
    poorly = [rep(1, high=90, quality="poor", flags=("heel_lift",))]
    session_on(lines["slide"], 2, poorly)
    slide = series_of(world, "heel_slide")
    assert [p.poor for p in slide.points] == [False, False, True]
    assert form_flags(slide) == []  # two trusted sessions: not yet a habit
    session_on(lines["slide"], 3, flagged)
    assert [f.key for f in form_flags(series_of(world, "heel_slide"))] == [
        "form_flags:heel_slide:right:heel_lift"
    ]


# --- exports -------------------------------------------------------------------------------------


def test_csv_rows_carry_the_grade_and_its_reasons(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(
        lines["slide"],
        0,
        [
            rep(1, high=90),
            rep(2, high=96, quality="fair", reasons=(SMALL,)),
            rep(3, high=125, quality="poor", reasons=(HIDDEN, GLITCH)),
            rep(4, high=91, quality=""),
        ],
    )
    session_on(
        lines["extension"],
        1,
        [
            rep(
                1,
                low=-10,
                high=85,
                quality="fair",
                reasons=("-10° is beyond the normal knee range",),
            )
        ],
    )
    text = "".join(repetitions_csv(patient=world.p, first=MONDAY, last=LAST_DAY))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [
        (row["exercise"], row["quality"], row["quality_reasons"], row["session_outcome"])
        for row in rows
    ] == [
        ("heel_slide", "good", "", "done"),
        ("heel_slide", "fair", SMALL, "done"),
        ("heel_slide", "poor", f"{HIDDEN};{GLITCH}", "done"),
        ("heel_slide", "", "", "done"),
        # A reason that starts like a spreadsheet formula comes out quoted.
        ("seated_knee_extension", "fair", "'-10° is beyond the normal knee range", "partly_done"),
    ]


def fhir_observations(world: World) -> list[dict[str, Any]]:
    bundle = fhir_bundle(patient=world.p, first=MONDAY, last=LAST_DAY)
    Bundle.model_validate(bundle)  # a valid FHIR R4 Bundle, notes and interpretations included
    return [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
    ]


def poor_component(observation: dict[str, Any]) -> Any:
    (component,) = [
        c
        for c in observation["component"]
        if c["code"]["coding"][0]["code"] == "poor-quality-repetitions"
    ]
    return component["valueQuantity"]["value"]


def test_fhir_observations_note_poor_reps_and_are_indeterminate_when_all_are_poor(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(lines["slide"], 0, [rep(1, high=90), rep(2, high=92, quality="fair")])
    session_on(
        lines["slide"],
        1,
        [rep(1, high=90), rep(2, high=92), rep(3, high=125, quality="poor", reasons=(GLITCH,))],
    )
    session_on(
        lines["slide"],
        2,
        [rep(1, high=100, quality="poor"), rep(2, high=110, quality="poor")],
    )
    clean, some, all_poor = fhir_observations(world)
    reason = (
        "repetitions graded poor: the camera view, the person's size in the picture or hidden "
        "landmarks make their angle unreliable."
    )
    assert poor_component(clean) == 0
    assert "note" not in clean and "interpretation" not in clean
    assert poor_component(some) == 1
    assert some["note"] == [{"text": f"1 of 3 {reason}"}]
    assert "interpretation" not in some
    assert poor_component(all_poor) == 2
    assert all_poor["note"] == [{"text": f"2 of 2 {reason}"}]
    assert all_poor["interpretation"] == [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                    "code": "IND",
                    "display": "Indeterminate",
                }
            ]
        }
    ]
    parsed = Observation.model_validate(all_poor)
    assert parsed.interpretation is not None and parsed.note is not None
    assert [c.code for c in parsed.interpretation[0].coding or []] == ["IND"]
    assert parsed.note[0].text == f"2 of 2 {reason}"


# --- the session page and the charts -------------------------------------------------------------


def test_the_session_page_shows_each_grade_and_its_reasons(world: World) -> None:
    session = world.a.completed_session  # S1 R1, S1 R2, S2 R1: recorded before grading
    graded = [
        rep(2, set_number=2, high=120, quality="poor", reasons=(HIDDEN, GLITCH)),
        rep(3, set_number=2, high=90, quality="fair", reasons=(SMALL,)),
    ]
    for data in graded:
        rep_record(session=session, data=data)
    response = client_for(world, "therapist_a").get(reverse("session_detail", args=[session.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<th>Measurement</th>" in html
    assert html.count('class="badge quality-') == 2
    assert '<span class="badge quality-poor">poor</span>' in html
    assert '<span class="badge quality-fair">fair</span>' in html
    for reason in (HIDDEN, GLITCH, SMALL):
        assert f'<small class="muted quality-reason">{reason}</small>' in html
    assert html.count('<td><span class="muted">—</span></td>') == 3  # not graded


def test_the_rom_chart_draws_a_session_graded_poor_throughout_hollow(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(lines["slide"], 0, [rep(1, high=90), rep(2, high=125, quality="poor")])
    session_on(lines["slide"], 1, [rep(1, high=100, quality="poor")])
    session_on(lines["slide"], 2, [rep(1, high=94)])
    figure = rom_figure([series_of(world, "heel_slide")])
    (mean,) = [trace for trace in figure.data if trace.name.startswith("Mean")]
    assert list(mean.y) == [90.0, 100.0, 94.0]
    assert list(mean.marker.symbol) == ["circle", "circle-open", "circle"]
    assert list(mean.customdata) == [
        "1 reps, 90–90°",
        "1 reps, 100–100° · poor measurement",
        "1 reps, 94–94°",
    ]


def test_the_session_chart_draws_poor_repetitions_as_hollow_bars_and_dotted_traces(
    world: World, lines: dict[str, Prescription]
) -> None:
    session = session_on(
        lines["slide"],
        0,
        [
            rep(1, high=90),
            rep(2, high=120, quality="poor", reasons=(GLITCH,)),
            rep(3, high=92, quality="poor", flags=("heel_lift",)),
            rep(4, high=91, quality="fair", flags=("heel_lift",)),
        ],
    )
    reps = list(session.repetitions.order_by("set_number", "index"))
    figure = session_figure(reps, target_deg=110.0, flag_labels={"heel_lift": "Heel lifts"})
    lines_drawn = [trace for trace in figure.data if trace.type == "scatter"]
    (bars,) = [trace for trace in figure.data if trace.type == "bar"]
    assert list(bars.y) == [85.0, 115.0, 87.0, 86.0]
    assert list(bars.marker.color) == [BLUE, HOLLOW, HOLLOW, ORANGE]
    assert list(bars.marker.line.color) == [BLUE, BLUE, ORANGE, ORANGE]
    assert list(bars.customdata) == [
        "no form flag",
        "no form flag · poor measurement",
        "Heel lifts · poor measurement",
        "Heel lifts",
    ]
    assert [trace.line.dash for trace in lines_drawn] == ["solid", "dot", "dot", "solid"]
    assert [trace.line.color for trace in lines_drawn] == [BLUE, BLUE, ORANGE, ORANGE]


# --- every reader leaves out the poor repetitions alike -------------------------------------------


def test_the_session_summary_and_the_fhir_values_leave_out_poor_reps_unless_all_are(
    world: World, lines: dict[str, Prescription]
) -> None:
    some = session_on(
        lines["slide"], 0, [rep(1, high=90), rep(2, high=125, quality="poor", reasons=(GLITCH,))]
    )
    every = session_on(
        lines["slide"], 1, [rep(1, high=100, quality="poor"), rep(2, high=110, quality="poor")]
    )
    assert (some.reps_counted, some.best_peak_deg, some.best_rom_deg) == (2, 90.0, 85.0)
    assert (every.reps_counted, every.best_peak_deg, every.mean_rom_deg) == (2, 110.0, 100.0)
    first, second = fhir_observations(world)
    assert first["valueQuantity"]["value"] == 85.0  # best ROM of the trusted repetition
    assert second["valueQuantity"]["value"] == 105.0  # all poor: all of them


def test_the_objective_measures_and_the_trend_rest_on_trusted_sessions(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(lines["slide"], 0, [rep(1, high=80), rep(2, high=80)])
    session_on(
        lines["slide"], 1, [rep(1, high=130, quality="poor"), rep(2, high=130, quality="poor")]
    )
    session_on(lines["slide"], 2, [rep(1, high=90), rep(2, high=90)])
    slide = series_of(world, "heel_slide")
    measure = measure_of(slide)
    assert (measure.first_deg, measure.latest_deg, measure.best_deg) == (80.0, 85.0, 90.0)
    assert slide.trend == [80.0, 85.0]  # one value per trusted session
    (week,) = _weekly_rom(slide).points  # a printed chart's weekly point
    assert (week.best_deg, week.mean_deg, week.poor_reps, week.poor) == (90.0, 85.0, 2, False)
