"""Writes for patients, the exercise library, protocols and assignments."""

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from analysis.exercises import LIBRARY
from patients.models import Assignment, Exercise, Patient, Prescription, Protocol, Therapist

# Built-in exercises get the same primary key on every installation, derived from their slug.
_LIBRARY_NAMESPACE = uuid.UUID("0b4f3c9e-6a55-4f5e-9d0c-2f1f3f6c9a10")


def builtin_exercise_id(slug: str) -> uuid.UUID:
    return uuid.uuid5(_LIBRARY_NAMESPACE, slug)


def exercise_library_sync(*, using: str = "default") -> None:
    """Make the built-in rows match analysis.exercises.LIBRARY (idempotent)."""
    for definition in LIBRARY:
        Exercise.objects.using(using).update_or_create(
            id=builtin_exercise_id(definition.slug),
            defaults={
                "owner": None,
                "slug": definition.slug,
                **Exercise.fields_from_definition(definition),
            },
        )


# --- Users ---------------------------------------------------------------------------------------


def therapist_create(
    *, email: str, first_name: str, last_name: str, password: str, title: str = "", clinic: str = ""
) -> Therapist:
    with transaction.atomic():
        user = get_user_model().objects.create_user(
            username=email.lower(),
            email=email.lower(),
            first_name=first_name,
            last_name=last_name,
            password=password,
        )
        therapist = Therapist(user=user, title=title, clinic=clinic)
        therapist.full_clean()
        therapist.save()
    return therapist


@dataclass(frozen=True)
class PatientFields:
    first_name: str
    last_name: str
    email: str
    condition: str
    affected_side: str
    date_of_birth: datetime.date | None = None
    notes: str = ""


def patient_create(*, therapist: Therapist, fields: PatientFields) -> Patient:
    """A patient and their login. The login has no password: the patient sets one through the
    invitation link (the therapist never types or sees it)."""
    email = fields.email.strip().lower()
    User = get_user_model()
    if User.objects.filter(username=email).exists():
        raise ValidationError({"email": "An account with this e-mail address already exists."})
    with transaction.atomic():
        user = User(
            username=email, email=email, first_name=fields.first_name, last_name=fields.last_name
        )
        user.set_unusable_password()
        user.full_clean()
        user.save()
        patient = Patient(
            user=user,
            therapist=therapist,
            condition=fields.condition,
            affected_side=fields.affected_side,
            date_of_birth=fields.date_of_birth,
            notes=fields.notes,
        )
        patient.full_clean()
        patient.save()
    return patient


def patient_update(*, patient: Patient, fields: PatientFields) -> Patient:
    email = fields.email.strip().lower()
    User = get_user_model()
    if User.objects.filter(username=email).exclude(pk=patient.user.pk).exists():
        raise ValidationError({"email": "An account with this e-mail address already exists."})
    with transaction.atomic():
        user = patient.user
        user.username = user.email = email
        user.first_name, user.last_name = fields.first_name, fields.last_name
        user.full_clean()
        user.save()
        patient.condition = fields.condition
        patient.affected_side = fields.affected_side
        patient.date_of_birth = fields.date_of_birth
        patient.notes = fields.notes
        patient.full_clean()
        patient.save()
    return patient


def patient_invitation_path(*, patient: Patient) -> str:
    """The set-password path for the patient's login. It stops working once used (the token
    depends on the password hash) and after settings.PASSWORD_RESET_TIMEOUT."""
    user = patient.user
    return reverse(
        "password_set",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )


def patient_invite(*, patient: Patient, base_url: str) -> str:
    """E-mail the invitation link to the patient and return it (the therapist may also hand it
    over in person)."""
    link = base_url.rstrip("/") + patient_invitation_path(patient=patient)
    therapist = patient.therapist
    send_mail(
        subject="Your home exercise programme",
        message=(
            f"Hello {patient.user.first_name},\n\n{therapist} has set up your home exercise "
            f"programme. Choose your password here to sign in:\n\n{link}\n\n"
            f"Your login is {patient.user.username}. The link is valid for 7 days."
        ),
        from_email=None,
        recipient_list=[patient.user.email],
    )
    return link


# --- Exercise library ----------------------------------------------------------------------------


def exercise_save(*, therapist: Therapist, exercise: Exercise) -> Exercise:
    """Save a therapist's custom exercise (validated as a full analysis definition)."""
    if not exercise._state.adding and exercise.owner_id != therapist.pk:
        raise ValidationError("Only your own custom exercises can be changed.")
    exercise.owner = therapist
    exercise.full_clean()
    exercise.save()
    return exercise


# --- Protocols -----------------------------------------------------------------------------------


def protocol_save(
    *,
    therapist: Therapist,
    protocol: Protocol | None,
    name: str,
    notes: str,
    lines: list[dict[str, Any]],
) -> Protocol:
    """Create or update a protocol with exactly the given exercise lines, in order.

    A line dict carries Prescription fields; with an "id" it updates that line. Lines not given are
    removed (their past sessions keep their exercise and targets).
    """
    if not lines:
        raise ValidationError("A protocol needs at least one exercise.")
    if protocol is not None and protocol.therapist_id != therapist.pk:
        raise ValidationError("Only the therapist who wrote a protocol can change it.")
    with transaction.atomic():
        protocol = protocol or Protocol(therapist=therapist)
        protocol.name, protocol.notes = name, notes
        protocol.full_clean()
        protocol.save()
        existing = {line.pk: line for line in protocol.prescriptions.all()}
        for position, data in enumerate(lines):
            line = existing.pop(data["id"], None) if data.get("id") else None
            line = line or Prescription(protocol=protocol)
            exercise = data["exercise"]
            if exercise.owner_id not in (None, therapist.pk):
                raise ValidationError("Unknown exercise.")
            for field in (
                "exercise",
                "side",
                "sets",
                "reps",
                "hold_s",
                "rest_s",
                "sessions_per_week",
                "notes",
            ):
                setattr(line, field, data[field])
            target = data.get("target_rom_deg")
            line.target_rom_deg = exercise.default_target_deg if target is None else target
            line.position = position
            line.full_clean()
            line.save()
        # Whatever was not claimed by a submitted line has been removed from the protocol.
        protocol.prescriptions.filter(pk__in=existing).delete()
    return protocol


def assignment_save(
    *,
    patient: Patient,
    protocol: Protocol,
    start_date: datetime.date,
    end_date: datetime.date,
    assignment: Assignment | None = None,
) -> Assignment:
    if protocol.therapist_id != patient.therapist_id:
        raise ValidationError("A protocol can only be assigned by the therapist who wrote it.")
    assignment = assignment or Assignment(patient=patient)
    assignment.protocol, assignment.start_date, assignment.end_date = protocol, start_date, end_date
    assignment.full_clean()
    assignment.save()
    return assignment
