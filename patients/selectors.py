"""Reads. Object-level access lives here: every `*_get_for_user` scopes its query by the user, and
an object the user may not see raises Http404, the same as one that does not exist."""

import datetime
from typing import TypeVar
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import Count, Model, Prefetch, QuerySet
from django.http import Http404

from patients.models import Assignment, Exercise, Patient, Prescription, Protocol, Therapist

User = AbstractBaseUser | AnonymousUser
M = TypeVar("M", bound=Model)


def therapist_of(user: User) -> Therapist | None:
    return getattr(user, "therapist", None) if user.is_authenticated else None


def patient_of(user: User) -> Patient | None:
    return getattr(user, "patient", None) if user.is_authenticated else None


def get_or_404(queryset: QuerySet[M], pk: UUID | str) -> M:
    try:
        return queryset.get(pk=pk)
    except (ObjectDoesNotExist, ValueError, ValidationError):
        raise Http404 from None


def visible_to(queryset: QuerySet[M], user: User) -> QuerySet[M]:
    """Rows of a model with a `patient`: those of the therapist's patients, or the patient's own;
    anyone else gets Http404."""
    if therapist := therapist_of(user):
        return queryset.filter(patient__therapist=therapist)
    if patient := patient_of(user):
        return queryset.filter(patient=patient)
    raise Http404


def patient_get_for_user(*, user: User, patient_id: UUID) -> Patient:
    if therapist := therapist_of(user):
        return get_or_404(
            Patient.objects.of_therapist(therapist).select_related("user"), patient_id
        )
    if (patient := patient_of(user)) and patient.pk == patient_id:
        return patient
    raise Http404


def protocol_get_for_user(*, user: User, protocol_id: UUID) -> Protocol:
    """Protocols belong to the therapist who wrote them; patients see theirs through their plan."""
    therapist = therapist_of(user)
    if therapist is None:
        raise Http404
    return get_or_404(Protocol.objects.filter(therapist=therapist), protocol_id)


def assignment_get_for_user(*, user: User, assignment_id: UUID) -> Assignment:
    therapist = therapist_of(user)
    if therapist is None:
        raise Http404
    queryset = Assignment.objects.filter(patient__therapist=therapist).select_related(
        "patient__user", "protocol"
    )
    return get_or_404(queryset, assignment_id)


def exercise_get_for_user(
    *, user: User, exercise_id: UUID | str, editable: bool = False
) -> Exercise:
    """The built-in library is readable by every therapist; custom exercises only by their owner,
    and only custom exercises can be edited."""
    therapist = therapist_of(user)
    if therapist is None:
        raise Http404
    queryset = (
        Exercise.objects.filter(owner=therapist)
        if editable
        else Exercise.objects.visible_to(therapist)
    )
    return get_or_404(queryset, exercise_id)


def protocol_list_for_therapist(*, therapist: Therapist) -> list[Protocol]:
    return list(
        Protocol.objects.filter(therapist=therapist)
        .annotate(line_count=Count("prescriptions", distinct=True))
        .annotate(patient_count=Count("assignments__patient", distinct=True))
    )


def assignment_lines_prefetch() -> Prefetch:
    """Prefetch for assignments: their protocol's exercise lines, in order, with the exercise."""
    return Prefetch(
        "protocol__prescriptions",
        queryset=Prescription.objects.select_related("exercise").order_by("position"),
    )


# --- Adherence -----------------------------------------------------------------------------------


def expected_sessions(
    *, prescription: Prescription, assignment: Assignment, first: datetime.date, last: datetime.date
) -> float:
    """Sessions a prescription asks for in [first, last], pro rata over the days its assignment
    covers."""
    start, end = max(first, assignment.start_date), min(last, assignment.end_date)
    days = (end - start).days + 1
    return prescription.sessions_per_week * days / 7 if days > 0 else 0.0


def adherence_ratio(expected_and_done: list[tuple[float, int]]) -> float | None:
    """Share of prescribed sessions done, each prescription capped at what it asked for, so that
    over-doing one exercise does not hide skipping another. None when nothing was prescribed."""
    expected = sum(want for want, _ in expected_and_done)
    if expected == 0:
        return None
    return sum(min(done, want) for want, done in expected_and_done) / expected
