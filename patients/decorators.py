"""Role gates for views. Anonymous users go to the login page; a logged-in user of the wrong role
gets 404, like any object they may not see."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from patients.models import Patient, Therapist
from patients.selectors import patient_of, therapist_of

View = Callable[..., HttpResponse]


class TherapistRequest(HttpRequest):
    therapist: Therapist


class PatientRequest(HttpRequest):
    patient: Patient


def therapist_required(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        therapist = therapist_of(request.user)
        if therapist is None:
            raise Http404
        request.therapist = therapist  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapped


def patient_required(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        patient = patient_of(request.user)
        if patient is None:
            raise Http404
        request.patient = patient  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapped
