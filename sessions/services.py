"""Writes for exercise sessions, repetitions, what the patient reports afterwards, and alerts."""

import datetime
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from analysis import alerts
from analysis.exercises import Laterality, sides_in_turn
from analysis.repetitions import RepetitionMetrics
from patients.models import Assignment, Patient, Prescription
from sessions.models import Alert, ExerciseSession, PainReport, Repetition, RepMetrics
from sessions.references import rep_similarity, target_deg
from sessions.selectors import progress_of_patient


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
            .in_local_days(today, today)
            .filter(
                patient=patient,
                prescription=prescription,
                status=ExerciseSession.Status.IN_PROGRESS,
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
            target_rom_deg=target_deg(patient.pk, prescription.exercise, prescription),
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
        _alerts_refresh_later(session.patient_id)
    return session


def _alerts_refresh_later(patient_id: uuid.UUID) -> None:
    # Imported here: sessions.tasks imports this module for the work its tasks do.
    from sessions.tasks import alerts_refresh_patient

    alerts_refresh_patient.delay_on_commit(str(patient_id))


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
    _alerts_refresh_later(session.patient_id)  # pain may have risen
    return report


def rep_record(*, session: ExerciseSession, data: RepetitionMetrics) -> Repetition:
    """Store one repetition exactly once: a retried or duplicated call returns the existing row
    (the unique constraint on session, set and index decides)."""
    key = {"session": session, "set_number": data.set_number, "index": data.index}
    existing = Repetition.objects.filter(**key).first()
    if existing:
        return existing
    fields = {k: v for k, v in Repetition.stored_fields(data).items() if k not in key}
    similarity, deviating_joints = rep_similarity(session=session, data=data)
    rep = Repetition(**key, **fields, similarity=similarity, deviating_joints=deviating_joints)
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


# --- Alerts --------------------------------------------------------------------------------------


def alert_acknowledge(*, alert: Alert, user: Any) -> Alert:
    """Acknowledge once; acknowledging again keeps the first time and person."""
    Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=user
    )
    alert.refresh_from_db()
    return alert


# A therapist who acknowledged an alert is not asked again about the same subject for a week,
# even if the condition still holds (the daily evaluation would otherwise raise it every morning);
# after that, a condition that persists is worth raising again, with its new numbers.
ALERT_QUIET_DAYS_AFTER_ACK = 7


def alerts_refresh(*, patient: Patient, today: datetime.date) -> list[Alert]:
    """Evaluate the patient's alert rules (analysis.alerts) on the windows ending `today` and
    create an alert for each finding whose subject (key) has neither an open alert nor one
    acknowledged within the last ALERT_QUIET_DAYS_AFTER_ACK days. Returns the new alerts.

    Safe to run concurrently (daily run and after a session): the unique open (patient, key)
    constraint decides, and the loser skips that alert."""
    findings = alerts.evaluate(
        progress_of_patient(patient=patient, first=alerts.history_window(today)[0], last=today),
        last_7_days=progress_of_patient(
            patient=patient, first=alerts.adherence_window(today)[0], last=today
        ),
        today=today,
        tz=timezone.get_current_timezone(),
    )
    if not findings:
        return []
    quiet_since = today - datetime.timedelta(days=ALERT_QUIET_DAYS_AFTER_ACK - 1)
    taken = set(
        Alert.objects.filter(patient=patient, key__in=[_alert_key(f.key) for f in findings])
        .filter(Q(acknowledged_at__isnull=True) | Q(acknowledged_at__date__gte=quiet_since))
        .values_list("key", flat=True)
    )
    created = []
    for finding in findings:
        if _alert_key(finding.key) in taken:
            continue
        alert = Alert(
            patient=patient,
            kind=finding.kind,
            key=_alert_key(finding.key),
            message=_shortened(finding.message, Alert._meta.get_field("message").max_length),
        )
        alert.full_clean(validate_constraints=False)  # the insert below checks the constraint
        try:
            with transaction.atomic():
                alert.save(force_insert=True)
        except IntegrityError:
            continue  # raised meanwhile by a concurrent refresh
        taken.add(alert.key)
        created.append(alert)
    return created


def _alert_key(key: str) -> str:
    """The key as stored: a key too long for the column (a custom exercise's long slug or form
    fault code) keeps its start and ends with a digest of the whole, so it stays one per subject."""
    limit = Alert._meta.get_field("key").max_length or len(key)
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: limit - len(digest) - 1]}~{digest}"


def _shortened(message: str, limit: int | None) -> str:
    if limit is None or len(message) <= limit:
        return message
    return message[: limit - 1].rstrip() + "…"
