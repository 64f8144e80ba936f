"""The patient data exports: CSV rows per repetition and a FHIR R4 Bundle per period.

The clinic below gives patient P a March 2024 of known sessions: a heel slide (right) with a pain
report, a forward lunge for both sides, an exercise whose name is a spreadsheet formula, and
sessions that must stay out (before and after the period, still in progress).
"""

import csv
import datetime
import io
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from pytest_django import DjangoAssertNumQueries

from analysis.repetitions import RepetitionMetrics
from patients.models import Exercise, Patient, Prescription
from patients.services import assignment_save, exercise_save, protocol_save
from reports.exports import CSV_COLUMNS, fhir_bundle, observation_id, repetitions_csv
from sessions.models import ExerciseSession
from sessions.services import rep_record, session_complete, session_report, session_start
from tests.conftest import World

UTC = datetime.UTC
FIRST, LAST = datetime.date(2024, 3, 1), datetime.date(2024, 3, 31)
FORMULA = '=HYPERLINK("http://evil.example","x")'


@dataclass
class Clinic:
    patient: Patient
    heel_slide: ExerciseSession
    lunge: ExerciseSession
    formula: ExerciseSession
    before: ExerciseSession
    after: ExerciseSession
    open: ExerciseSession
    lines: dict[str, Prescription]


def metrics(
    *, set_number: int, index: int, rom: float, side: str = "right", flags: tuple[str, ...] = ()
) -> RepetitionMetrics:
    return RepetitionMetrics(
        set_number=set_number,
        index=index,
        side=side,
        start_s=4.0 * index,
        end_s=4.0 * index + 3.25,
        min_deg=5.0,
        max_deg=5.0 + rom,
        rom_deg=rom,
        duration_s=3.25,
        peak_velocity_dps=101.26,
        concentric_s=1.234,
        eccentric_s=2.016,
        symmetry_pct=91.04,
        form_flags=list(flags),
    )


def run(
    line: Prescription,
    *,
    start: datetime.datetime,
    reps: list[RepetitionMetrics],
    done: bool = True,
) -> ExerciseSession:
    session = session_start(
        patient=line.protocol.assignments.get().patient, prescription=line, now=start
    )
    for rep in reps:
        rep_record(session=session, data=rep)
    if done:
        session = session_complete(session=session, now=start + datetime.timedelta(minutes=10))
    return session


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2024, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def clinic(world: World) -> Clinic:
    therapist = world.a.therapist
    squat = Exercise.objects.get(slug="squat", owner=None)
    formula = Exercise(**Exercise.fields_from_definition(squat.definition()))
    formula.name, formula.slug = FORMULA, "formula_squat"
    formula = exercise_save(therapist=therapist, exercise=formula)
    line = {"sets": 2, "reps": 3, "hold_s": 0, "rest_s": 30, "sessions_per_week": 3, "notes": ""}
    protocol = protocol_save(
        therapist=therapist,
        protocol=None,
        name="Export",
        notes="",
        lines=[
            {
                **line,
                "side": "right",
                "target_rom_deg": 90.0,
                "exercise": Exercise.objects.get(slug="heel_slide", owner=None),
            },
            {
                **line,
                "side": "both",
                "target_rom_deg": 85.0,
                "exercise": Exercise.objects.get(slug="lunge", owner=None),
            },
            {**line, "side": "right", "target_rom_deg": 80.0, "exercise": formula},
        ],
    )
    assignment_save(
        patient=world.p,
        protocol=protocol,
        start_date=datetime.date(2024, 2, 20),
        end_date=datetime.date(2024, 4, 10),
    )
    heel, lunge, custom = protocol.prescriptions.order_by("position")
    heel_slide = run(
        heel,
        start=at(3, 4, 9),
        reps=[
            metrics(set_number=1, index=1, rom=80.0),
            metrics(set_number=1, index=2, rom=84.0, flags=("heel_lift", "hip_rotation")),
        ],
    )
    session_report(session=heel_slide, pain_nrs=3, effort_borg=4.0)
    return Clinic(
        patient=world.p,
        heel_slide=heel_slide,
        lunge=run(
            lunge,
            start=at(3, 6, 10),
            reps=[
                metrics(set_number=1, index=1, rom=70.0, side="right"),
                metrics(set_number=1, index=2, rom=60.0, side="left"),
                metrics(set_number=1, index=3, rom=76.0, side="right"),
            ],
        ),
        formula=run(custom, start=at(3, 8, 8), reps=[metrics(set_number=1, index=1, rom=55.0)]),
        before=run(heel, start=at(2, 29, 9), reps=[metrics(set_number=1, index=1, rom=70.0)]),
        after=run(heel, start=at(4, 1, 9), reps=[metrics(set_number=1, index=1, rom=90.0)]),
        open=run(
            heel, start=at(3, 10, 9), reps=[metrics(set_number=1, index=1, rom=88.0)], done=False
        ),
        lines={"heel_slide": heel, "lunge": lunge, "formula": custom},
    )


def export_rows(
    patient: Patient, first: datetime.date = FIRST, last: datetime.date = LAST
) -> list[dict[str, str]]:
    text = "".join(repetitions_csv(patient=patient, first=first, last=last))
    return list(csv.DictReader(io.StringIO(text)))


# --- CSV ---------------------------------------------------------------------------------------


def test_the_csv_header_is_the_documented_column_names(clinic: Clinic) -> None:
    lines = list(repetitions_csv(patient=clinic.patient, first=FIRST, last=LAST))
    assert next(csv.reader([lines[0]])) == [name for name, _ in CSV_COLUMNS]
    assert lines[0].endswith("\r\n")


def test_each_repetition_is_one_row_with_exact_values(clinic: Clinic) -> None:
    first = export_rows(clinic.patient)[0]
    assert first == {
        "session_id": str(clinic.heel_slide.pk),
        "session_date": "2024-03-04",
        "session_started_at": "2024-03-04T09:00:00Z",
        "exercise": "heel_slide",
        "exercise_name": "Heel slide",
        "joint": "knee",
        "motion": "flexion",
        "side": "right",
        "target_rom_deg": "90.0",
        "set_number": "1",
        "rep_index": "1",
        "start_s": "4.00",
        "end_s": "7.25",
        "duration_s": "3.25",
        "min_deg": "5.0",
        "max_deg": "85.0",
        "rom_deg": "80.0",
        "concentric_s": "1.23",
        "eccentric_s": "2.02",
        "peak_velocity_dps": "101.3",
        "hold_s": "",
        "symmetry_pct": "91.0",
        "form_flags": "",
        "quality": "",
        "quality_reasons": "",
        "similarity": "",
        "deviating_joints": "",
        "session_source": "live",
        "session_outcome": "partly_done",
        "pain_nrs": "3",
        "effort_borg": "4.0",
    }


def test_the_similarity_to_the_reference_is_exported_per_repetition(clinic: Clinic) -> None:
    clinic.heel_slide.repetitions.filter(index=1).update(
        similarity=72.46, deviating_joints=["right knee", "right hip"]
    )
    first = export_rows(clinic.patient)[0]
    assert first["similarity"] == "72.5"
    assert first["deviating_joints"] == "right knee;right hip"


def test_only_completed_sessions_started_within_the_period_are_exported(clinic: Clinic) -> None:
    rows = export_rows(clinic.patient)
    order = [(row["session_id"], row["set_number"], row["rep_index"]) for row in rows]
    heel, lunge, formula = (str(s.pk) for s in (clinic.heel_slide, clinic.lunge, clinic.formula))
    assert order == [
        (heel, "1", "1"),
        (heel, "1", "2"),
        (lunge, "1", "1"),
        (lunge, "1", "2"),
        (lunge, "1", "3"),
        (formula, "1", "1"),
    ]
    assert [row["side"] for row in rows if row["session_id"] == lunge] == ["right", "left", "right"]


def test_the_period_is_in_local_days(clinic: Clinic, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Zurich"  # UTC+1 in March 2024
    heel = clinic.lines["heel_slide"]
    early = run(heel, start=at(2, 29, 23, 30), reps=[metrics(set_number=1, index=1, rom=61.0)])
    late = run(heel, start=at(3, 31, 23, 30), reps=[metrics(set_number=1, index=1, rom=62.0)])
    rows = export_rows(clinic.patient)
    by_session = {row["session_id"]: row for row in rows}
    assert by_session[str(early.pk)]["session_date"] == "2024-03-01"
    assert by_session[str(early.pk)]["session_started_at"] == "2024-02-29T23:30:00Z"
    assert str(late.pk) not in by_session  # 1 April, local time
    assert str(clinic.before.pk) not in by_session


def test_form_flags_are_joined_with_semicolons(clinic: Clinic) -> None:
    assert [row["form_flags"] for row in export_rows(clinic.patient)[:2]] == [
        "",
        "heel_lift;hip_rotation",
    ]


def test_a_formula_in_an_exercise_name_comes_out_quoted(clinic: Clinic) -> None:
    row = export_rows(clinic.patient)[-1]
    assert (row["exercise"], row["exercise_name"]) == ("formula_squat", "'" + FORMULA)


@pytest.mark.parametrize("start", ["+", "-", "@", "\t", "\r"])
def test_every_formula_starting_character_is_defused(clinic: Clinic, start: str) -> None:
    Exercise.objects.filter(slug="formula_squat").update(name=f"{start}1+1")
    assert export_rows(clinic.patient)[-1]["exercise_name"] == f"'{start}1+1"


def test_negative_angles_are_numbers_not_quoted_text(clinic: Clinic) -> None:
    rep = clinic.formula.repetitions.get()
    rep.min_deg, rep.max_deg = -3.25, 51.75
    rep.save()
    row = export_rows(clinic.patient)[-1]
    assert (row["min_deg"], row["max_deg"]) == ("-3.2", "51.8")


def test_pain_and_effort_come_from_the_sessions_report_or_stay_empty(clinic: Clinic) -> None:
    session_report(session=clinic.lunge, pain_nrs=6, effort_borg=0.5)
    pain = {
        (row["exercise"], row["pain_nrs"], row["effort_borg"])
        for row in export_rows(clinic.patient)
    }
    assert pain == {("heel_slide", "3", "4.0"), ("lunge", "6", "0.5"), ("formula_squat", "", "")}


def test_an_empty_period_gives_the_header_only(clinic: Clinic) -> None:
    day = datetime.date(2024, 3, 20)
    lines = list(repetitions_csv(patient=clinic.patient, first=day, last=day))
    assert len(lines) == 1


def test_other_patients_sessions_are_not_exported(clinic: Clinic, world: World) -> None:
    today = timezone.localdate()
    rows = export_rows(world.q, today - datetime.timedelta(days=30), today)
    assert {row["session_id"] for row in rows} == {str(world.b.completed_session.pk)}


def test_the_csv_takes_one_query_however_many_sessions(
    clinic: Clinic, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    one_session = datetime.date(2024, 3, 4)
    with django_assert_num_queries(1):
        assert (
            len(list(repetitions_csv(patient=clinic.patient, first=one_session, last=one_session)))
            == 3
        )
    with django_assert_num_queries(1):
        assert len(list(repetitions_csv(patient=clinic.patient, first=FIRST, last=LAST))) == 7


# --- FHIR --------------------------------------------------------------------------------------


def bundle_of(patient: Patient) -> dict[str, Any]:
    return fhir_bundle(patient=patient, first=FIRST, last=LAST)


def observations(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
    ]


def test_the_bundle_is_a_valid_fhir_r4_collection(clinic: Clinic) -> None:
    bundle = bundle_of(clinic.patient)
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    assert parsed.timestamp is not None and parsed.identifier is not None
    resources = [entry.resource for entry in parsed.entry or []]
    assert [type(r).__name__ for r in resources] == ["Patient", *["Observation"] * 4]
    heel = resources[1]
    assert isinstance(heel, Observation) and heel.valueQuantity is not None
    assert (heel.valueQuantity.value, heel.valueQuantity.code) == (84.0, "deg")


def test_each_completed_session_gives_one_observation_per_side(clinic: Clinic) -> None:
    expected = [
        observation_id(session_id=clinic.heel_slide.pk, side="right"),
        observation_id(session_id=clinic.lunge.pk, side="left"),
        observation_id(session_id=clinic.lunge.pk, side="right"),
        observation_id(session_id=clinic.formula.pk, side="right"),
    ]
    assert [obs["id"] for obs in observations(bundle_of(clinic.patient))] == [
        str(i) for i in expected
    ]


def test_the_observation_value_is_the_best_rom_in_ucum_degrees(clinic: Clinic) -> None:
    heel = observations(bundle_of(clinic.patient))[0]
    assert heel["status"] == "final"
    assert heel["valueQuantity"] == {
        "value": 84.0,
        "unit": "deg",
        "system": "http://unitsofmeasure.org",
        "code": "deg",
    }
    assert heel["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "exam",
        "display": "Exam",
    }
    codes = {(c["system"], c["code"]) for c in heel["code"]["coding"]}
    assert codes == {
        ("http://snomed.info/sct", "364564000"),
        ("https://rehab.example.org/fhir/CodeSystem/exercise", "heel_slide"),
    }


def test_the_components_carry_mean_rom_best_peak_and_repetitions_per_side(clinic: Clinic) -> None:
    _, left, right, _ = observations(bundle_of(clinic.patient))

    def values(obs: dict[str, Any]) -> dict[str, tuple[float, str]]:
        return {
            c["code"]["coding"][0]["code"]: (
                c["valueQuantity"]["value"],
                c["valueQuantity"]["code"],
            )
            for c in obs["component"]
        }

    assert right["valueQuantity"]["value"] == 76.0
    assert values(right) == {
        "mean-rom": (73.0, "deg"),
        "best-peak-angle": (81.0, "deg"),
        "repetitions": (2, "{repetitions}"),
        "poor-quality-repetitions": (0, "{repetitions}"),
    }
    assert left["valueQuantity"]["value"] == 60.0
    assert values(left) == {
        "mean-rom": (60.0, "deg"),
        "best-peak-angle": (65.0, "deg"),
        "repetitions": (1, "{repetitions}"),
        "poor-quality-repetitions": (0, "{repetitions}"),
    }


def test_the_mean_similarity_to_the_reference_is_a_component_when_scored(clinic: Clinic) -> None:
    clinic.heel_slide.repetitions.filter(index=1).update(similarity=80.0)
    clinic.heel_slide.repetitions.filter(index=2).update(similarity=70.0)
    bundle = bundle_of(clinic.patient)
    Bundle.model_validate(bundle)
    heel, *others = observations(bundle)
    similarity = [
        c for c in heel["component"] if c["code"]["coding"][0]["code"].startswith("mean-similarity")
    ]
    assert [c["valueQuantity"]["value"] for c in similarity] == [75.0]
    assert similarity[0]["valueQuantity"]["code"] == "{score}"
    assert not any("similarity" in str(obs["component"]) for obs in others)  # no reference


def test_a_right_knee_observation_has_the_knee_joint_body_site(clinic: Clinic) -> None:
    heel = observations(bundle_of(clinic.patient))[0]
    assert heel["bodySite"] == {
        "text": "Right knee joint",
        "coding": [
            {
                "system": "http://snomed.info/sct",
                "code": "49076000",
                "display": "Knee joint structure",
            }
        ],
    }


def test_the_subject_is_the_patient_entry(clinic: Clinic) -> None:
    bundle = bundle_of(clinic.patient)
    patient_entry = bundle["entry"][0]
    assert patient_entry["fullUrl"] == f"urn:uuid:{clinic.patient.pk}"
    assert patient_entry["resource"]["id"] == str(clinic.patient.pk)
    full_urls = {entry["fullUrl"] for entry in bundle["entry"]}
    for obs in observations(bundle):
        assert obs["subject"]["reference"] == patient_entry["fullUrl"]
        assert f"urn:uuid:{obs['id']}" in full_urls


def test_the_patient_has_name_and_birth_date(clinic: Clinic) -> None:
    Patient.objects.filter(pk=clinic.patient.pk).update(date_of_birth=datetime.date(1961, 5, 2))
    clinic.patient.refresh_from_db()
    patient = bundle_of(clinic.patient)["entry"][0]["resource"]
    assert patient["name"] == [{"text": "Pat A", "family": "A", "given": ["Pat"]}]
    assert patient["birthDate"] == "1961-05-02"


def test_the_effective_period_is_the_sessions_start_and_end(clinic: Clinic) -> None:
    heel = observations(bundle_of(clinic.patient))[0]
    assert heel["effectivePeriod"] == {
        "start": "2024-03-04T09:00:00Z",
        "end": "2024-03-04T09:10:00Z",
    }


def test_observation_ids_are_the_same_in_every_export(clinic: Clinic) -> None:
    first, second = bundle_of(clinic.patient), bundle_of(clinic.patient)
    ids = [obs["id"] for obs in observations(first)]
    assert ids == [obs["id"] for obs in observations(second)]
    assert all(uuid.UUID(i).version == 5 for i in ids)
    assert first["id"] != second["id"]  # each bundle is a new document


def test_the_bundle_takes_one_query_however_many_sessions(
    clinic: Clinic, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    patient = Patient.objects.select_related("user").get(pk=clinic.patient.pk)
    one_session = datetime.date(2024, 3, 4)
    with django_assert_num_queries(1):
        small = fhir_bundle(patient=patient, first=one_session, last=one_session)
    with django_assert_num_queries(1):
        large = fhir_bundle(patient=patient, first=FIRST, last=LAST)
    assert (len(observations(small)), len(observations(large))) == (1, 4)
