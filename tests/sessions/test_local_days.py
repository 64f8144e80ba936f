"""ExerciseSessionQuerySet.in_local_days: the one meaning of "the sessions of these days" (the
progress charts and report, the exports, the week on Today, the roster, resuming today's
session): local days of the current time zone, whatever the database's own."""

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from patients.models import Exercise, Patient
from patients.services import PatientFields, patient_create, therapist_create
from sessions.models import ExerciseSession

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")  # CET (UTC+1) in winter, CEST (UTC+2) in summer


@pytest.fixture
def patient(settings: Any) -> Patient:
    settings.TIME_ZONE = "Europe/Berlin"
    therapist = therapist_create(
        email="therapist.days@example.org", first_name="T", last_name="Days", password="x"
    )
    return patient_create(
        therapist=therapist,
        fields=PatientFields(
            first_name="P",
            last_name="Days",
            email="patient.days@example.org",
            condition="Knee",
            affected_side="right",
        ),
    )


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def started(patient: Patient, moment: datetime.datetime) -> ExerciseSession:
    return ExerciseSession.objects.create(
        patient=patient,
        exercise=Exercise.objects.get(slug="squat", owner=None),
        side="both",
        started_at=moment,
        target_sets=1,
        target_reps=1,
        target_rom_deg=90,
    )


def days(first: datetime.date, last: datetime.date) -> set[ExerciseSession]:
    return set(ExerciseSession.objects.in_local_days(first, last))


def test_a_day_runs_from_local_midnight_to_local_midnight(patient: Patient) -> None:
    before = started(patient, berlin(2024, 3, 4, 23, 59, 59))  # 22:59:59 UTC on the 4th
    first = started(patient, berlin(2024, 3, 5, 0, 0))  # still the 4th in UTC
    last = started(patient, berlin(2024, 3, 5, 23, 59, 59))
    after = started(patient, berlin(2024, 3, 6, 0, 0))
    day = datetime.date(2024, 3, 5)
    assert days(day, day) == {first, last}
    assert days(day - datetime.timedelta(days=1), day) == {before, first, last}
    assert days(day, day + datetime.timedelta(days=1)) == {first, last, after}
    assert after not in days(datetime.date(2024, 3, 1), day)


@pytest.mark.parametrize(
    ("day", "hours"),
    [(datetime.date(2024, 3, 31), 23), (datetime.date(2024, 10, 27), 25)],  # summer time changes
)
def test_a_day_of_a_clock_change_is_still_one_whole_local_day(
    patient: Patient, day: datetime.date, hours: int
) -> None:
    # Local midnights as UTC instants: arithmetic on them is in real time, not on the wall clock.
    start = berlin(day.year, day.month, day.day).astimezone(datetime.UTC)
    following = day + datetime.timedelta(days=1)
    end = berlin(following.year, following.month, following.day).astimezone(datetime.UTC)
    assert end - start == datetime.timedelta(hours=hours)  # what makes the day special
    inside = {
        started(patient, start + datetime.timedelta(minutes=30)),
        started(patient, end - datetime.timedelta(minutes=30)),  # 23:30 local
    }
    started(patient, end)
    started(patient, start - datetime.timedelta(minutes=1))
    assert days(day, day) == inside


def test_it_agrees_with_the_local_date_of_every_start(patient: Patient) -> None:
    # Every 20 minutes over two weeks around the spring clock change, against the __date lookup
    # (the database's own conversion to local dates) the readers used before.
    moment = berlin(2024, 3, 24).astimezone(datetime.UTC)
    while moment < berlin(2024, 4, 7):
        started(patient, moment)
        moment += datetime.timedelta(minutes=20)
    for first, last in [
        ((3, 30), (3, 31)),
        ((3, 31), (3, 31)),
        ((3, 25), (4, 2)),
        ((4, 1), (4, 1)),
    ]:
        first_day, last_day = datetime.date(2024, *first), datetime.date(2024, *last)
        by_date = ExerciseSession.objects.filter(
            started_at__date__gte=first_day, started_at__date__lte=last_day
        )
        assert days(first_day, last_day) == set(by_date)
        assert days(first_day, last_day)


def test_the_bounds_are_a_plain_range_on_the_start_so_the_index_serves_them() -> None:
    query = ExerciseSession.objects.in_local_days(
        datetime.date(2024, 3, 5), datetime.date(2024, 3, 6)
    )
    # A __date lookup would put a conversion (TruncDate) on the left, which has no target field.
    children: list[Any] = query.query.where.children
    lookups = [(child.lhs.target.name, child.lookup_name) for child in children]
    assert lookups == [("started_at", "gte"), ("started_at", "lt")]
