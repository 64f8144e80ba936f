"""Writes for exercise sessions, repetitions and what the patient reports afterwards."""

import datetime
from collections.abc import Sequence
from dataclasses import asdict

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from analysis.exercises import Laterality, sides_in_turn
from analysis.repetitions import RepetitionMetrics
from patients.models import Assignment, PainReport, Patient, Prescription
from sessions.models import ExerciseSession, Repetition, RepMetrics


def session_start(
    *, patient: Patient, prescription: Prescription, now: datetime.datetime | None = None
) -> ExerciseSession:
    """Start a session of a prescription that is on the patient's plan today. A session of the
    same prescription already open today is resumed instead of doubled."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    on_plan = Assignment.objects.active_on(today).filter(
        patient=patient, protocol_id=prescription.protocol_id
    )
    if not on_plan.exists():
        raise ValidationError("This exercise is not on your plan today.")
    with transaction.atomic():
        open_today = (
            ExerciseSession.objects.select_for_update()
            .filter(
                patient=patient,
                prescription=prescription,
                status=ExerciseSession.Status.IN_PROGRESS,
                started_at__date=today,
            )
            .first()
        )
        if open_today:
            return open_today
        session = ExerciseSession(
            patient=patient,
            prescription=prescription,
            exercise=prescription.exercise,
            side=prescription.side,
            started_at=now,
            target_sets=prescription.sets,
            target_reps=prescription.reps,
            target_rom_deg=prescription.target_rom_deg,
            sides_in_turn=len(
                sides_in_turn(Laterality(prescription.exercise.laterality), prescription.side)
            ),
        )
        session.full_clean()
        session.save()
    return session


def session_complete(
    *,
    session: ExerciseSession,
    known_reps: Sequence[RepetitionMetrics] = (),
    now: datetime.datetime | None = None,
    self_reported: bool = False,
) -> ExerciseSession:
    """Close the session and store its summary from the recorded repetitions, together with
    `known_reps` that the live consumer counted and may still be on their way through Celery.
    `self_reported`: the patient marked it as done without the camera. Idempotent."""
    with transaction.atomic():
        session = (
            ExerciseSession.objects.select_for_update()
            .select_related("exercise")
            .get(pk=session.pk)
        )
        if session.status != ExerciseSession.Status.IN_PROGRESS:
            return session
        _store_summary(session, known_reps)
        session.status = ExerciseSession.Status.COMPLETED
        session.self_reported = self_reported
        session.ended_at = now or timezone.now()
        session.save()
        from patients.tasks import alerts_refresh_patient  # here: patients.services reads sessions

        alerts_refresh_patient.delay_on_commit(str(session.patient_id))
    return session


def session_add_partial(*, session: ExerciseSession) -> None:
    ExerciseSession.objects.filter(pk=session.pk).update(partial_reps=F("partial_reps") + 1)


def _store_summary(session: ExerciseSession, known_reps: Sequence[RepetitionMetrics] = ()) -> None:
    reps: dict[tuple[int, int], RepMetrics] = {
        (rep.set_number, rep.index): rep for rep in known_reps
    }
    fields = ("set_number", "index", "min_deg", "max_deg", "rom_deg", "quality")
    for row in session.repetitions.only(*fields):
        reps[(row.set_number, row.index)] = row
    session.summarise(list(reps.values()))


def session_report(
    *, session: ExerciseSession, pain_nrs: int, effort_borg: float, comment: str = ""
) -> PainReport:
    """Record (or correct) the patient's pain and effort for a completed session."""
    if session.status != ExerciseSession.Status.COMPLETED:
        raise ValidationError("Pain and effort are reported after the session is completed.")
    report = PainReport.objects.filter(session=session).first() or PainReport(
        session=session, patient=session.patient
    )
    report.pain_nrs, report.effort_borg, report.comment = pain_nrs, effort_borg, comment
    report.full_clean()
    report.save()
    from patients.tasks import alerts_refresh_patient  # here: patients.services reads sessions

    alerts_refresh_patient.delay_on_commit(str(session.patient_id))  # pain may have risen
    return report


def rep_record(*, session: ExerciseSession, data: RepetitionMetrics) -> Repetition:
    """Store one repetition exactly once: a retried or duplicated call returns the existing row
    (the unique constraint on session, set and index decides)."""
    key = {"session": session, "set_number": data.set_number, "index": data.index}
    existing = Repetition.objects.filter(**key).first()
    if existing:
        return existing
    rep = Repetition(**key, **{k: v for k, v in asdict(data).items() if k not in key})
    rep.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            rep.save(force_insert=True)
    except IntegrityError:
        return Repetition.objects.get(**key)
    _resummarise_if_closed(session)
    return rep


def reps_record_missing(*, session: ExerciseSession, reps: Sequence[RepetitionMetrics]) -> int:
    """Store those of `reps` that are not stored yet (the live consumer's safety net: what it
    queued for Celery may have been lost with Redis). Returns how many were missing."""
    stored = set(session.repetitions.values_list("set_number", "index"))
    missing = [rep for rep in reps if (rep.set_number, rep.index) not in stored]
    for rep in missing:
        rep_record(session=session, data=rep)
    return len(missing)


def _resummarise_if_closed(session: ExerciseSession) -> None:
    """A repetition that arrives after its session was closed (Celery lagging behind the live
    page) still counts in the session's summary."""
    with transaction.atomic():
        closed = (
            ExerciseSession.objects.select_for_update()
            .select_related("exercise")
            .filter(pk=session.pk)
            .exclude(status=ExerciseSession.Status.IN_PROGRESS)
            .first()
        )
        if closed is not None:
            _store_summary(closed)
            closed.save(
                update_fields=["reps_counted", "best_rom_deg", "mean_rom_deg", "best_peak_deg"]
            )
