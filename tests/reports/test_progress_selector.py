"""`progress_of_patient`: exact per-session numbers from stored repetitions, in a fixed number
of queries however long the history."""

import datetime

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from analysis.repetitions import RepetitionMetrics
from patients.models import Exercise, Prescription
from patients.services import assignment_save, protocol_save
from sessions.selectors import progress_of_patient
from sessions.services import rep_record, session_complete, session_report, session_start
from tests.conftest import World

MONDAY = datetime.date(2025, 3, 3)


def rep(index: int, *, low: float, high: float, flags: tuple[str, ...] = ()) -> RepetitionMetrics:
    return RepetitionMetrics(
        set_number=1,
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
    )


def session_on(
    line: Prescription, day: datetime.date, reps: list[RepetitionMetrics], pain: int | None = None
) -> None:
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time(10)))
    session = session_start(
        patient=line.protocol.assignments.get().patient, prescription=line, now=start
    )
    for data in reps:
        rep_record(session=session, data=data)
    session = session_complete(session=session, now=start + datetime.timedelta(minutes=8))
    if pain is not None:
        session_report(session=session, pain_nrs=pain, effort_borg=3.0)


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
                "sessions_per_week": 3,
            },
            {
                **base,
                "exercise": Exercise.objects.get(slug="seated_knee_extension", owner=None),
                "target_rom_deg": 0.0,
                "sessions_per_week": 2,
            },
        ],
    )
    patient = world.p
    patient.assignments.all().delete()
    assignment_save(
        patient=patient,
        protocol=protocol,
        start_date=MONDAY,
        end_date=MONDAY + datetime.timedelta(days=13),
    )
    slide, extension = protocol.prescriptions.order_by("position")
    return {"slide": slide, "extension": extension}


def test_each_session_gives_the_best_mean_and_spread_of_its_peaks(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(lines["slide"], MONDAY, [rep(1, low=5, high=80)])  # the baseline, before the period
    session_on(
        lines["slide"],
        MONDAY + datetime.timedelta(days=7),
        [
            rep(1, low=5, high=90),
            rep(2, low=6, high=96, flags=("trunk_lean",)),
            rep(3, low=5, high=93),
        ],
        pain=4,
    )
    progress = progress_of_patient(
        patient=world.p,
        first=MONDAY + datetime.timedelta(days=7),
        last=MONDAY + datetime.timedelta(days=13),
    )
    (slide,) = progress.rom
    (point,) = slide.points
    assert (point.best_deg, point.mean_deg, point.low_deg, point.high_deg) == (
        96.0,
        93.0,
        90.0,
        96.0,
    )
    assert (point.reps, point.target_deg, point.flags) == (3, 110.0, {"trunk_lean": 1})
    assert slide.baseline_deg == 80.0
    assert (slide.direction, slide.normal_deg, slide.angle_label) == (1, 135.0, "knee flexion")
    assert [(w.pain_nrs, w.effort_borg) for w in progress.wellbeing] == [(4, 3.0)]


def test_an_extension_peaks_at_its_lowest_angle(
    world: World, lines: dict[str, Prescription]
) -> None:
    session_on(lines["extension"], MONDAY, [rep(1, low=12, high=85), rep(2, low=8, high=84)])
    progress = progress_of_patient(patient=world.p, first=MONDAY, last=MONDAY)
    (extension,) = progress.rom
    (point,) = extension.points
    assert (point.best_deg, point.mean_deg, point.low_deg, point.high_deg) == (8.0, 10.0, 8.0, 12.0)
    assert (extension.direction, extension.normal_deg, extension.baseline_deg) == (-1, 0.0, 10.0)


def test_weeks_hold_sessions_done_against_prescribed(
    world: World, lines: dict[str, Prescription]
) -> None:
    two = [rep(1, low=5, high=90), rep(2, low=5, high=88)]  # of 3 prescribed: counts
    for day in (0, 2, 4):
        session_on(lines["slide"], MONDAY + datetime.timedelta(days=day), two)
    session_on(lines["extension"], MONDAY + datetime.timedelta(days=8), two)
    # One repetition of three, and nothing at all: ended, but not done.
    session_on(lines["slide"], MONDAY + datetime.timedelta(days=5), [rep(1, low=5, high=90)])
    session_on(lines["extension"], MONDAY + datetime.timedelta(days=9), [])
    progress = progress_of_patient(
        patient=world.p,
        first=MONDAY - datetime.timedelta(days=14),
        last=MONDAY + datetime.timedelta(days=13),
    )
    # The two empty weeks before the assignment are left out.
    assert [(w.monday, w.expected, w.done) for w in progress.weeks] == [
        (MONDAY, 5.0, 3),
        (MONDAY + datetime.timedelta(days=7), 5.0, 1),
    ]
    assert progress.sessions_done == 4
    assert progress.adherence == 0.4


def test_the_history_is_read_in_a_fixed_number_of_queries(
    world: World, lines: dict[str, Prescription], django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    def count_queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            progress_of_patient(
                patient=world.p, first=MONDAY, last=MONDAY + datetime.timedelta(days=13)
            )
        return len(queries)

    session_on(lines["slide"], MONDAY, [rep(1, low=5, high=90)], pain=3)
    one = count_queries()
    for day in range(1, 12):
        session_on(
            lines["slide"],
            MONDAY + datetime.timedelta(days=day),
            [rep(1, low=5, high=90 + day)],
            pain=3,
        )
        session_on(
            lines["extension"], MONDAY + datetime.timedelta(days=day), [rep(1, low=day, high=85)]
        )
    assert count_queries() == one == 10


def test_a_patient_without_sessions_has_no_series(world: World) -> None:
    progress = progress_of_patient(patient=world.q, first=MONDAY, last=MONDAY)
    assert progress.rom == () and progress.wellbeing == ()


def test_other_patients_sessions_stay_out(world: World, lines: dict[str, Prescription]) -> None:
    session_on(lines["slide"], MONDAY, [rep(1, low=5, high=90)])
    p_sessions = {str(pk) for pk in world.p.sessions.values_list("pk", flat=True)}
    progress = progress_of_patient(patient=world.q, first=MONDAY, last=timezone.localdate())
    q_points = {point.session_id for series in progress.rom for point in series.points}
    assert q_points and not q_points & p_sessions
