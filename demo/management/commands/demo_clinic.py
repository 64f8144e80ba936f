"""Load a demo clinic: one therapist, three patients with their plans and 8 weeks of history.

    manage.py demo_clinic            # load it (does nothing but print the logins when loaded)
    manage.py demo_clinic --reset    # delete the demo users and all that is theirs, then reload

The numbers come from `demo.stories` (pure, seeded); this command turns them into rows.
"""

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from analysis.repetitions import RepetitionMetrics
from demo import stories
from patients.models import Exercise, Patient, Prescription, Protocol, Therapist
from patients.services import (
    PatientFields,
    assignment_save,
    patient_create,
    protocol_save,
    therapist_create,
)
from sessions.models import BORG_CR10_CHOICES, ExerciseSession, PainReport, Repetition
from sessions.services import alerts_refresh

BORG_SCALE = tuple(value for value, _label in BORG_CR10_CHOICES)
BATCH_SIZE = 500


class Command(BaseCommand):
    help = "Load a demo clinic (one therapist, three patients, 8 weeks of exercise history)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset", action="store_true", help="Delete the demo users and their data; reload."
        )

    def handle(self, *args: Any, reset: bool = False, **options: Any) -> None:
        started = time.perf_counter()
        with transaction.atomic():
            if reset:
                _delete_demo()
            elif Therapist.objects.filter(user__username=stories.THERAPIST.email).exists():
                self.stdout.write("The demo clinic is already loaded (--reset rebuilds it).")
                self._print_logins()
                return
            _refuse_taken_logins()
            rows = _build(timezone.localdate())
        self.stdout.write(
            f"Loaded the demo clinic: {len(stories.PATIENTS)} patients, {len(rows.sessions)} "
            f"sessions, {len(rows.repetitions)} repetitions, {len(rows.reports)} pain reports "
            f"in {time.perf_counter() - started:.1f} s."
        )
        self._print_logins()

    def _print_logins(self) -> None:
        self.stdout.write(f"\nOpen {stories.URL} and sign in as:")
        for login in stories.LOGINS:
            self.stdout.write(f"  {login.role:<10} {login.email:<24} {login.password}")


# --- Deleting -------------------------------------------------------------------------------------


def _demo_emails() -> list[str]:
    return [login.email for login in stories.LOGINS]


def _delete_demo() -> None:
    """Patients first (Patient.therapist is PROTECT; their assignments, sessions, repetitions and
    reports cascade), then the protocols (Assignment.protocol is PROTECT), then the therapist."""
    User = get_user_model()
    therapists = Therapist.objects.filter(user__username=stories.THERAPIST.email)
    patient_users = Q(patient__therapist__in=therapists) | Q(username__in=_demo_emails())
    User.objects.filter(patient_users, therapist__isnull=True).delete()
    Protocol.objects.filter(therapist__in=therapists).delete()
    User.objects.filter(username__in=_demo_emails()).delete()


def _refuse_taken_logins() -> None:
    taken = get_user_model().objects.filter(username__in=_demo_emails())
    if taken.exists():
        names = ", ".join(user.get_username() for user in taken)
        raise CommandError(f"These logins exist outside the demo clinic: {names}. Use --reset.")


# --- Building -------------------------------------------------------------------------------------


@dataclass
class Rows:
    """The history's rows, collected for bulk_create."""

    sessions: list[ExerciseSession] = field(default_factory=list)
    repetitions: list[Repetition] = field(default_factory=list)
    reports: list[PainReport] = field(default_factory=list)
    reported_at: list[datetime.datetime] = field(default_factory=list)

    def add(
        self,
        patient: Patient,
        prescriptions: list[Prescription],
        samples: list[stories.SessionSample],
    ) -> None:
        for sample in samples:
            session = _session_row(patient, prescriptions[sample.line], sample)
            self.sessions.append(session)
            self.repetitions.extend(_rep_row(session, rep) for rep in sample.reps)
            if sample.pain:
                self.reports.append(_report_row(session, sample.pain))
                self.reported_at.append(_aware(sample.ended_at, sample.pain.delay_s))

    def save(self) -> None:
        ExerciseSession.objects.bulk_create(self.sessions, batch_size=BATCH_SIZE)
        Repetition.objects.bulk_create(self.repetitions, batch_size=BATCH_SIZE)
        PainReport.objects.bulk_create(self.reports, batch_size=BATCH_SIZE)
        # reported_at is auto_now_add, which bulk_create fills with "now": put the history back.
        for report, reported_at in zip(self.reports, self.reported_at, strict=True):
            report.reported_at = reported_at
        PainReport.objects.bulk_update(self.reports, ["reported_at"], batch_size=BATCH_SIZE)


def _build(today: datetime.date) -> Rows:
    therapist = therapist_create(
        email=stories.THERAPIST.email,
        password=stories.THERAPIST.password,
        first_name=stories.THERAPIST.first_name,
        last_name=stories.THERAPIST.last_name,
        title=stories.THERAPIST.title,
        clinic=stories.THERAPIST.clinic,
    )
    exercises = _library({line.slug for story in stories.PATIENTS for line in story.lines})
    password_hash = make_password(stories.PATIENT_PASSWORD)  # hashed once: it is slow by design
    rows = Rows()
    for number, story in enumerate(stories.PATIENTS):
        patient = _create_patient(therapist, story, today, password_hash)
        prescriptions = _create_plan(therapist, patient, story, exercises, today)
        history = stories.generate_history(
            story, today=today, seed=stories.SEED + number, borg_scale=BORG_SCALE
        )
        rows.add(patient, prescriptions, history)
    rows.save()
    _backdate(therapist, today)
    # The alerts come from the real rules, as the daily task would raise them this morning.
    for patient in Patient.objects.filter(therapist=therapist):
        alerts_refresh(patient=patient, today=today)
    return rows


def _library(slugs: set[str]) -> dict[str, Exercise]:
    found = {e.slug: e for e in Exercise.objects.filter(owner__isnull=True, slug__in=slugs)}
    if missing := slugs - found.keys():
        raise CommandError(f"Built-in exercises missing ({', '.join(sorted(missing))}): migrate.")
    return found


def _create_patient(
    therapist: Therapist, story: stories.PatientStory, today: datetime.date, password_hash: str
) -> Patient:
    patient = patient_create(
        therapist=therapist,
        fields=PatientFields(
            first_name=story.first_name,
            last_name=story.last_name,
            email=story.email,
            condition=story.condition,
            affected_side=story.affected_side,
            date_of_birth=story.date_of_birth(today),
            notes=story.notes,
        ),
    )
    # Demo only: a known password instead of the invitation link.
    patient.user.password = password_hash
    patient.user.save(update_fields=["password"])
    return patient


def _create_plan(
    therapist: Therapist,
    patient: Patient,
    story: stories.PatientStory,
    exercises: dict[str, Exercise],
    today: datetime.date,
) -> list[Prescription]:
    """The story's protocol, assigned from the first day of history; its lines in order."""
    protocol = protocol_save(
        therapist=therapist,
        protocol=None,
        name=story.protocol_name,
        notes=story.protocol_notes,
        lines=[_line_fields(line, exercises[line.slug]) for line in story.lines],
    )
    assignment_save(
        patient=patient,
        protocol=protocol,
        start_date=stories.history_start(today),
        end_date=today + datetime.timedelta(days=stories.DAYS_AHEAD),
    )
    return list(protocol.prescriptions.select_related("exercise").order_by("position"))


def _line_fields(line: stories.LineStory, exercise: Exercise) -> dict[str, Any]:
    return {
        "exercise": exercise,
        "side": line.side,
        "sets": line.sets,
        "reps": line.reps,
        "hold_s": line.hold_s,
        "rest_s": line.rest_s,
        "target_rom_deg": line.target_deg,
        "sessions_per_week": line.per_week,
        "notes": line.notes,
    }


def _aware(moment: datetime.datetime, after_s: float = 0.0) -> datetime.datetime:
    return timezone.make_aware(moment + datetime.timedelta(seconds=after_s))


def _session_row(
    patient: Patient, prescription: Prescription, sample: stories.SessionSample
) -> ExerciseSession:
    session = ExerciseSession(
        patient=patient,
        prescription=prescription,
        exercise=prescription.exercise,
        side=sample.side,
        status=ExerciseSession.Status.COMPLETED,
        started_at=_aware(sample.started_at),
        ended_at=_aware(sample.ended_at),
        target_sets=prescription.sets,
        target_reps=prescription.reps,
        target_rom_deg=prescription.target_rom_deg,
        partial_reps=sample.partial_reps,
    )
    session.summarise(sample.reps)
    return session


def _rep_row(session: ExerciseSession, rep: RepetitionMetrics) -> Repetition:
    return Repetition(session=session, **Repetition.stored_fields(rep))


def _report_row(session: ExerciseSession, pain: stories.PainSample) -> PainReport:
    return PainReport(
        patient=session.patient,
        session=session,
        pain_nrs=pain.pain_nrs,
        effort_borg=pain.effort_borg,
        comment=pain.comment,
    )


def _backdate(therapist: Therapist, today: datetime.date) -> None:
    """Creation times that fit the history (auto_now_add stamped them with "now")."""
    start = stories.history_start(today)
    joined = _aware(datetime.datetime.combine(start, datetime.time(9)))
    User = get_user_model()
    User.objects.filter(pk=therapist.user_id).update(date_joined=joined - datetime.timedelta(365))
    patients = Patient.objects.filter(therapist=therapist)
    User.objects.filter(patient__in=patients).update(date_joined=joined)
    patients.update(created_at=joined)
    therapist.protocols.update(created_at=joined, updated_at=joined)
    for patient in patients:
        patient.assignments.update(created_at=joined)
