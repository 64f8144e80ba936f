"""A patient's recorded sessions as files for other software: CSV (one row per repetition) and an
HL7 FHIR R4 Bundle (one Observation per session and measured side).

Both read only completed sessions whose start falls on a local date within [first, last], and
both run a fixed number of queries however many sessions there are. docs/exports.md describes
the columns and the FHIR mapping.
"""

import csv
import datetime
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Avg, Count, Max, Min, Q
from django.utils import timezone

from analysis.exercises import RepThresholds
from patients.models import Patient
from sessions.models import (
    GRADED_POOR,
    ExerciseSession,
    ExerciseSessionQuerySet,
    PainReport,
    Repetition,
)

# --- Period ------------------------------------------------------------------------------------


def _sessions_in_period(
    *, patient: Patient, first: datetime.date, last: datetime.date
) -> ExerciseSessionQuerySet:
    # The period is in the clinic's local days (see ExerciseSessionQuerySet.in_local_days).
    return ExerciseSession.objects.completed().in_local_days(first, last).filter(patient=patient)


def _utc_iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("session_id", "UUID of the session"),
    ("session_date", "Local date the session started on (ISO 8601)"),
    ("session_started_at", "Start of the session, ISO 8601 in UTC"),
    ("exercise", "Exercise slug"),
    ("exercise_name", "Exercise name as shown to the patient"),
    ("joint", "Joint whose angle is measured"),
    ("motion", "Motion of that joint (flexion, abduction, ...)"),
    ("side", "Side of the body measured in this repetition (left or right)"),
    ("target_rom_deg", "Prescribed target angle, deg"),
    ("set_number", "Set number, from 1"),
    ("rep_index", "Repetition within its set, from 1"),
    ("start_s", "Start of the repetition, s from the session's start"),
    ("end_s", "End of the repetition, s from the session's start"),
    ("duration_s", "Duration, s"),
    ("min_deg", "Smallest joint angle, deg"),
    ("max_deg", "Largest joint angle, deg"),
    ("rom_deg", "Range of motion (max - min), deg"),
    ("concentric_s", "Time moving against gravity, s (empty when unknown)"),
    ("eccentric_s", "Time moving with gravity, s (empty when unknown)"),
    ("peak_velocity_dps", "Peak angular velocity, deg/s"),
    ("hold_s", "Longest time held within the target band, s (empty when unknown)"),
    ("symmetry_pct", "100 x smaller / larger ROM of the two sides, % (empty when not seen)"),
    ("form_flags", "Form warnings, codes joined with ';'"),
    ("quality", "How far the angle can be trusted: good, fair or poor (empty: not graded)"),
    ("quality_reasons", "What lowered the grade, joined with ';'"),
    (
        "similarity",
        "0-100: how closely the repetition followed the therapist's reference movement (DTW); "
        "empty without a reference",
    ),
    ("deviating_joints", "Joints furthest from the reference, worst first, joined with ';'"),
    ("session_source", "live (camera) or recording (an uploaded video)"),
    ("session_outcome", "done, partly_done, reported or not_measured"),
    ("pain_nrs", "Pain after the session, NRS 0-10 (empty when not reported)"),
    ("effort_borg", "Effort after the session, Borg CR-10 (empty when not reported)"),
)

# Spreadsheet programs run a cell starting with one of these as a formula (OWASP "CSV
# injection"); exercise names are typed by therapists, so text cells are defused with a quote.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """A file-like object whose write() hands back the line, so each row can be yielded."""

    def write(self, value: str) -> str:
        return value


def repetitions_csv(
    *, patient: Patient, first: datetime.date, last: datetime.date
) -> Iterator[str]:
    """CSV lines, header first: one row per stored repetition of the patient's completed sessions
    that started on a local date in [first, last], by session start, set and index. One query,
    read with .iterator() so the rows are never all model instances at once (the download view
    joins the lines into one body: its audit entry hashes the exact bytes)."""
    writer = csv.writer(_Line())
    yield writer.writerow([name for name, _ in CSV_COLUMNS])
    reps = (
        Repetition.objects.filter(
            session__in=_sessions_in_period(patient=patient, first=first, last=last)
        )
        .select_related("session__exercise", "session__pain_report")
        .defer("trace_deg")
        .order_by("session__started_at", "session_id", "set_number", "index")
    )
    for rep in reps.iterator(chunk_size=500):
        yield writer.writerow(_csv_row(rep))


def _csv_row(rep: Repetition) -> list[str]:
    session, exercise = rep.session, rep.session.exercise
    report = _pain_report(session)
    return [
        str(session.pk),
        timezone.localdate(session.started_at).isoformat(),
        _utc_iso(session.started_at),
        _text(exercise.slug),
        _text(exercise.name),
        _text(exercise.joint),
        _text(exercise.motion),
        _text(rep.side),
        _number(session.target_rom_deg, 1),
        str(rep.set_number),
        str(rep.index),
        _number(rep.start_s, 2),
        _number(rep.end_s, 2),
        _number(rep.duration_s, 2),
        _number(rep.min_deg, 1),
        _number(rep.max_deg, 1),
        _number(rep.rom_deg, 1),
        _number(rep.concentric_s, 2),
        _number(rep.eccentric_s, 2),
        _number(rep.peak_velocity_dps, 1),
        _number(rep.hold_s, 2),
        _number(rep.symmetry_pct, 1),
        _text(";".join(str(flag) for flag in rep.form_flags)),
        _text(rep.quality),
        _text(";".join(str(reason) for reason in rep.quality_reasons)),
        _number(rep.similarity, 1),
        _text(";".join(str(joint) for joint in rep.deviating_joints)),
        session.source,
        _text(session.outcome or ""),
        "" if report is None else str(report.pain_nrs),
        "" if report is None else _number(report.effort_borg, 1),
    ]


def _pain_report(session: ExerciseSession) -> PainReport | None:
    # select_related caches a missing reverse one-to-one as "absent": no query here.
    try:
        return session.pain_report
    except PainReport.DoesNotExist:
        return None


def _text(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_PREFIXES) else value


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return ""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0"


# --- FHIR --------------------------------------------------------------------------------------

SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
EXERCISE_SYSTEM = "https://rehab.example.org/fhir/CodeSystem/exercise"
MEASURE_SYSTEM = "https://rehab.example.org/fhir/CodeSystem/session-measure"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

# SNOMED CT 364564000 |Range of joint movement (observable entity)|: the observable that SNOMED's
# own "finding of range of joint movement" template interprets. No LOINC code for a single
# joint's measured ROM could be verified, so none is sent.
RANGE_OF_JOINT_MOVEMENT = {
    "system": SNOMED,
    "code": "364564000",
    "display": "Range of joint movement",
}

# Exercise.joint -> SNOMED CT joint structure (code, display). Joint structures, not the wider
# "region" concepts (72696002 is the knee *region*). For the shoulder the measured angle is the
# arm against the trunk; SNOMED's shoulder joint proper is 85537004 |Glenohumeral joint
# structure|. Laterality: R4's Observation.bodySite is one CodeableConcept and the lateralised
# "Structure of right/left ... joint" codes could not all be verified, so the unlateralised code
# is sent and the side is carried in bodySite.text ("Right knee joint").
JOINT_STRUCTURES: dict[str, tuple[str, str]] = {
    "shoulder": ("85537004", "Glenohumeral joint structure"),
    "elbow": ("16953009", "Elbow joint structure"),
    "hip": ("24136001", "Hip joint structure"),
    "knee": ("49076000", "Knee joint structure"),
    "ankle": ("70258002", "Ankle joint structure"),
}

# Observation ids are uuid5(session, side) in this namespace, so a re-export gives the same ids
# and a receiving system can update rather than duplicate.
_OBSERVATION_NAMESPACE = uuid.uuid5(
    uuid.NAMESPACE_URL, "https://rehab.example.org/fhir/Observation"
)


@dataclass(frozen=True)
class _SideMeasure:
    """One session's repetitions of one side, aggregated in the database."""

    session_id: uuid.UUID
    side: str
    started_at: datetime.datetime
    ended_at: datetime.datetime | None
    slug: str
    name: str
    joint: str
    motion: str
    thresholds: RepThresholds
    best_rom_deg: float
    mean_rom_deg: float
    highest_deg: float
    lowest_deg: float
    reps: int
    poor_reps: int
    mean_similarity: float | None  # to the therapist's reference; None without one

    @property
    def best_peak_deg(self) -> float:
        # As ExerciseSession.summarise: the angle reached furthest towards the target.
        return self.thresholds.peak_end(self.lowest_deg, self.highest_deg)


def fhir_bundle(*, patient: Patient, first: datetime.date, last: datetime.date) -> dict[str, Any]:
    """An HL7 FHIR R4 Bundle (type collection): the Patient and one Observation per completed
    session per measured side. One query (plus one for patient.user unless it is loaded)."""
    patient_url = f"urn:uuid:{patient.pk}"
    bundle_id = uuid.uuid4()
    entries = [{"fullUrl": patient_url, "resource": _patient_resource(patient)}]
    for measure in _side_measures(patient=patient, first=first, last=last):
        observation = _observation(measure, patient_url=patient_url)
        entries.append({"fullUrl": f"urn:uuid:{observation['id']}", "resource": observation})
    return {
        "resourceType": "Bundle",
        "id": str(bundle_id),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "collection",
        "timestamp": _utc_iso(timezone.now()),
        "entry": entries,
    }


def _patient_resource(patient: Patient) -> dict[str, Any]:
    user = patient.user
    name: dict[str, Any] = {"text": patient.full_name}
    if user.last_name:
        name["family"] = user.last_name
    if user.first_name:
        name["given"] = [user.first_name]
    resource: dict[str, Any] = {"resourceType": "Patient", "id": str(patient.pk), "name": [name]}
    if patient.date_of_birth:
        resource["birthDate"] = patient.date_of_birth.isoformat()
    return resource


def _measures(only: Q | None = None) -> dict[str, Any]:
    return {
        "mean_similarity": Avg("similarity", filter=only),
        "best_rom": Max("rom_deg", filter=only),
        "mean_rom": Avg("rom_deg", filter=only),
        "highest": Max("max_deg", filter=only),
        "lowest": Min("min_deg", filter=only),
    }


def _side_measures(
    *, patient: Patient, first: datetime.date, last: datetime.date
) -> Iterable[_SideMeasure]:
    # Grouped by session and repetition side: a session of an exercise for both sides yields one
    # measure per side actually seen; a session without stored repetitions measured nothing.
    rows = (
        Repetition.objects.filter(
            session__in=_sessions_in_period(patient=patient, first=first, last=last)
        )
        .values(
            "session_id",
            "side",
            "session__started_at",
            "session__ended_at",
            "session__exercise__slug",
            "session__exercise__name",
            "session__exercise__joint",
            "session__exercise__motion",
            "session__exercise__rest_deg",
            "session__exercise__peak_deg",
        )
        .annotate(
            reps=Count("id"),
            poor_reps=Count("id", filter=GRADED_POOR),
            **_measures(),
            **{f"trusted_{name}": value for name, value in _measures(~GRADED_POOR).items()},
        )
        .order_by("session__started_at", "session_id", "side")
    )
    for row in rows:
        # As on the charts: the numbers leave out the repetitions graded poor, unless all were.
        measured = "trusted_" if row["poor_reps"] < row["reps"] else ""
        thresholds = RepThresholds(
            rest_deg=row["session__exercise__rest_deg"],
            peak_deg=row["session__exercise__peak_deg"],
        )
        yield _SideMeasure(
            session_id=row["session_id"],
            side=row["side"],
            started_at=row["session__started_at"],
            ended_at=row["session__ended_at"],
            slug=row["session__exercise__slug"],
            name=row["session__exercise__name"],
            joint=row["session__exercise__joint"],
            motion=row["session__exercise__motion"],
            thresholds=thresholds,
            best_rom_deg=row[f"{measured}best_rom"],
            mean_rom_deg=row[f"{measured}mean_rom"],
            highest_deg=row[f"{measured}highest"],
            lowest_deg=row[f"{measured}lowest"],
            reps=row["reps"],
            poor_reps=row["poor_reps"],
            mean_similarity=row[f"{measured}mean_similarity"],
        )


def _observation(measure: _SideMeasure, *, patient_url: str) -> dict[str, Any]:
    period = {"start": _utc_iso(measure.started_at)}
    if measure.ended_at is not None:
        period["end"] = _utc_iso(measure.ended_at)
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(observation_id(session_id=measure.session_id, side=measure.side)),
        "status": "final",
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "exam", "display": "Exam"}]}
        ],
        "code": {
            "coding": [
                dict(RANGE_OF_JOINT_MOVEMENT),
                {"system": EXERCISE_SYSTEM, "code": measure.slug, "display": measure.name},
            ],
            "text": f"{measure.joint} {measure.motion} range of motion ({measure.name})",
        },
        "subject": {"reference": patient_url},
        "effectivePeriod": period,
        "valueQuantity": _degrees(measure.best_rom_deg),
        "bodySite": _body_site(measure.joint, measure.side),
        "component": [
            _component("mean-rom", "Mean range of motion", _degrees(measure.mean_rom_deg)),
            _component("best-peak-angle", "Best peak joint angle", _degrees(measure.best_peak_deg)),
            _component("repetitions", "Repetitions counted", _repetitions(measure.reps)),
            _component(
                "poor-quality-repetitions",
                "Repetitions whose angle could not be measured reliably",
                _repetitions(measure.poor_reps),
            ),
        ],
        **_quality_of(measure),
    }
    if measure.mean_similarity is not None:
        observation["component"].append(
            _component(
                "mean-similarity-to-reference",
                "Mean similarity to the therapist's reference movement (0-100, DTW)",
                _score(measure.mean_similarity),
            )
        )
    return observation


def _quality_of(measure: _SideMeasure) -> dict[str, Any]:
    """A note when some repetitions were graded poor; "indeterminate" when all of them were."""
    if not measure.poor_reps:
        return {}
    note = {
        "note": [
            {
                "text": f"{measure.poor_reps} of {measure.reps} repetitions graded poor: the "
                "camera view, the person's size in the picture or hidden landmarks make their "
                "angle unreliable."
            }
        ]
    }
    if measure.poor_reps < measure.reps:
        return note
    indeterminate = {"system": INTERPRETATION, "code": "IND", "display": "Indeterminate"}
    return {**note, "interpretation": [{"coding": [indeterminate]}]}


def observation_id(*, session_id: uuid.UUID, side: str) -> uuid.UUID:
    return uuid.uuid5(_OBSERVATION_NAMESPACE, f"{session_id}/{side}")


_SIDE_TEXT = {"left": "Left {} joint", "right": "Right {} joint", "both": "Both {} joints"}


def _body_site(joint: str, side: str) -> dict[str, Any]:
    site: dict[str, Any] = {"text": _SIDE_TEXT.get(side, "{} joint").format(joint)}
    structure = JOINT_STRUCTURES.get(joint.lower())
    if structure is not None:
        code, display = structure
        site["coding"] = [{"system": SNOMED, "code": code, "display": display}]
    return site


def _component(code: str, text: str, quantity: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": {
            "coding": [{"system": MEASURE_SYSTEM, "code": code, "display": text}],
            "text": text,
        },
        "valueQuantity": quantity,
    }


def _degrees(value: float) -> dict[str, Any]:
    return {"value": round(value, 1), "unit": "deg", "system": UCUM, "code": "deg"}


def _score(value: float) -> dict[str, Any]:
    return {"value": round(value, 1), "unit": "score", "system": UCUM, "code": "{score}"}


def _repetitions(count: int) -> dict[str, Any]:
    # UCUM has no unit for a count; an annotation in braces is a dimensionless 1.
    return {"value": count, "unit": "repetitions", "system": UCUM, "code": "{repetitions}"}
