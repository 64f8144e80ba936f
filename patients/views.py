"""Therapist pages of the clinic: patients, protocols, assignments, the exercise library, and a
patient's access history."""

import datetime
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms import BaseForm
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from analysis.form import describe, threshold_for
from audit.models import AuditEvent
from audit.selectors import EVENTS_PER_PAGE, events_of_patient
from audit.services import audit_record
from patients.decorators import TherapistRequest, therapist_required
from patients.forms import (
    AssignmentForm,
    ExerciseForm,
    PatientForm,
    ProtocolForm,
    formset_lines,
    prescription_formset,
)
from patients.models import Exercise
from patients.selectors import (
    assignment_get_for_user,
    exercise_get_for_user,
    patient_get_for_user,
    protocol_get_for_user,
    protocol_list_for_therapist,
)
from patients.services import (
    assignment_save,
    exercise_save,
    patient_create,
    patient_invite,
    patient_update,
    protocol_save,
)


def _apply_errors(form: BaseForm, error: ValidationError) -> None:
    """Show a service's ValidationError on the form that fed it."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


# --- Roster and patients -------------------------------------------------------------------------


@therapist_required
def patient_new(request: TherapistRequest) -> HttpResponse:
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = patient_create(therapist=request.therapist, fields=form.patient_fields())
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            audit_record(action=AuditEvent.Action.PATIENT_CREATED, request=request, obj=patient)
            patient_invite(patient=patient, base_url=request.build_absolute_uri("/"))
            messages.success(
                request, f"{patient.full_name} was added and an invitation was e-mailed."
            )
            return redirect("patient_detail", patient_id=patient.pk)
    return render(request, "patients/patient_form.html", {"form": form, "patient": None})


@therapist_required
def patient_edit(request: TherapistRequest, patient_id: UUID) -> HttpResponse:
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)
    form = PatientForm.for_patient(patient, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient_update(patient=patient, fields=form.patient_fields())
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            audit_record(
                action=AuditEvent.Action.PATIENT_CHANGED,
                request=request,
                obj=patient,
                # The names of the changed fields, never their values.
                detail="fields: " + (", ".join(form.changed_data) or "none"),
            )
            messages.success(request, "Patient details saved.")
            return redirect("patient_detail", patient_id=patient.pk)
    return render(request, "patients/patient_form.html", {"form": form, "patient": patient})


@therapist_required
@never_cache
def patient_access_history(request: TherapistRequest, patient_id: UUID) -> HttpResponse:
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)
    audit_record(action=AuditEvent.Action.AUDIT_VIEWED, request=request, obj=patient)
    page = Paginator(events_of_patient(patient_id=patient.pk), EVENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "audit/patient_access_history.html", {"patient": patient, "page": page})


@therapist_required
@require_POST
def patient_reinvite(request: TherapistRequest, patient_id: UUID) -> HttpResponse:
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)
    if patient.has_set_password:
        messages.info(request, f"{patient.full_name} has already set a password.")
    else:
        patient_invite(patient=patient, base_url=request.build_absolute_uri("/"))
        # Never the link: whoever holds it can choose the patient's password.
        audit_record(action=AuditEvent.Action.PATIENT_REINVITED, request=request, obj=patient)
        messages.success(request, f"The invitation was e-mailed to {patient.user.email} again.")
    return redirect("patient_detail", patient_id=patient.pk)


# --- Assignments ---------------------------------------------------------------------------------


@therapist_required
def assignment_new(request: TherapistRequest, patient_id: UUID) -> HttpResponse:
    patient = patient_get_for_user(user=request.user, patient_id=patient_id)
    today = timezone.localdate()
    form = AssignmentForm(
        request.POST or None,
        therapist=request.therapist,
        initial={"start_date": today, "end_date": today + datetime.timedelta(weeks=6)},
    )
    if request.method == "POST" and form.is_valid():
        try:
            assignment = assignment_save(patient=patient, **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            audit_record(
                action=AuditEvent.Action.ASSIGNMENT_CREATED, request=request, obj=assignment
            )
            messages.success(request, f"{form.cleaned_data['protocol']} assigned.")
            return redirect("patient_detail", patient_id=patient.pk)
    context = {"form": form, "patient": patient, "assignment": None}
    return render(request, "patients/assignment_form.html", context)


@therapist_required
def assignment_edit(request: TherapistRequest, assignment_id: UUID) -> HttpResponse:
    assignment = assignment_get_for_user(user=request.user, assignment_id=assignment_id)
    patient = assignment.patient
    form = AssignmentForm(
        request.POST or None,
        therapist=request.therapist,
        initial={
            "protocol": assignment.protocol,
            "start_date": assignment.start_date,
            "end_date": assignment.end_date,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            assignment_save(patient=patient, assignment=assignment, **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            audit_record(
                action=AuditEvent.Action.ASSIGNMENT_CHANGED, request=request, obj=assignment
            )
            messages.success(request, "Assignment saved.")
            return redirect("patient_detail", patient_id=patient.pk)
    context = {"form": form, "patient": patient, "assignment": assignment}
    return render(request, "patients/assignment_form.html", context)


# --- Protocols -----------------------------------------------------------------------------------


@therapist_required
def protocol_list(request: TherapistRequest) -> HttpResponse:
    protocols = protocol_list_for_therapist(therapist=request.therapist)
    return render(request, "patients/protocol_list.html", {"protocols": protocols})


def _protocol_builder(request: TherapistRequest, protocol_id: UUID | None) -> HttpResponse:
    therapist = request.therapist
    protocol = (
        protocol_get_for_user(user=request.user, protocol_id=protocol_id) if protocol_id else None
    )
    data = request.POST if request.method == "POST" else None
    initial = {"name": protocol.name, "notes": protocol.notes} if protocol else None
    form = ProtocolForm(data, initial=initial)
    formset = prescription_formset(therapist=therapist, protocol=protocol, data=data)
    if data is not None and form.is_valid() and formset.is_valid():
        try:
            protocol = protocol_save(
                therapist=therapist,
                protocol=protocol,
                lines=formset_lines(formset),
                **form.cleaned_data,
            )
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            audit_record(
                action=AuditEvent.Action.PROTOCOL_CHANGED
                if protocol_id
                else AuditEvent.Action.PROTOCOL_CREATED,
                request=request,
                obj=protocol,
            )
            messages.success(request, f"Protocol “{protocol.name}” saved.")
            return redirect("protocol_edit", protocol_id=protocol.pk)
    exercise_defaults = {
        str(pk): target
        for pk, target in Exercise.objects.visible_to(therapist).values_list(
            "pk", "default_target_deg"
        )
    }
    context = {
        "form": form,
        "formset": formset,
        "protocol": protocol,
        "exercise_defaults": exercise_defaults,
    }
    return render(request, "patients/protocol_builder.html", context)


@therapist_required
def protocol_new(request: TherapistRequest) -> HttpResponse:
    return _protocol_builder(request, None)


@therapist_required
def protocol_edit(request: TherapistRequest, protocol_id: UUID) -> HttpResponse:
    return _protocol_builder(request, protocol_id)


# --- Exercise library ----------------------------------------------------------------------------


@therapist_required
def exercise_list(request: TherapistRequest) -> HttpResponse:
    exercises = Exercise.objects.visible_to(request.therapist).select_related("owner")
    return render(request, "patients/exercise_list.html", {"exercises": exercises})


@therapist_required
def exercise_detail(request: TherapistRequest, exercise_id: UUID) -> HttpResponse:
    exercise = exercise_get_for_user(user=request.user, exercise_id=exercise_id)
    definition = exercise.definition()
    faults = [
        {
            "label": fault.label,
            "check": describe(fault, definition),
            "measured": threshold_for(fault, definition) is not None,
        }
        for fault in definition.form_faults
    ]
    context = {"exercise": exercise, "faults": faults}
    return render(request, "patients/exercise_detail.html", context)


def _exercise_form(request: TherapistRequest, exercise: Exercise) -> HttpResponse:
    therapist = request.therapist
    form = ExerciseForm(request.POST or None, instance=exercise, therapist=therapist)
    if request.method == "POST" and form.is_valid():
        try:
            exercise = exercise_save(therapist=therapist, exercise=form.instance)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, f"Exercise “{exercise.name}” saved.")
            return redirect("exercise_detail", exercise_id=exercise.pk)
    context = {"form": form, "exercise": exercise, "is_new": exercise._state.adding}
    return render(request, "patients/exercise_form.html", context)


@therapist_required
def exercise_new(request: TherapistRequest) -> HttpResponse:
    exercise = Exercise()
    if template_id := request.GET.get("from"):
        # Start from a library exercise: a copy the therapist then adapts.
        source = exercise_get_for_user(user=request.user, exercise_id=template_id)
        exercise = Exercise(**Exercise.fields_from_definition(source.definition()))
        exercise.name = f"{source.name} (custom)"
    return _exercise_form(request, exercise)


@therapist_required
def exercise_edit(request: TherapistRequest, exercise_id: UUID) -> HttpResponse:
    exercise = exercise_get_for_user(user=request.user, exercise_id=exercise_id, editable=True)
    return _exercise_form(request, exercise)
