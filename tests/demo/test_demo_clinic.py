"""The demo clinic that `make run` loads: realistic, complete, and loaded only once."""

import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard.selectors import roster_for_therapist
from patients.models import Patient, Therapist
from sessions.models import ExerciseSession, Repetition
from tests.conftest import password_login


def _load(*args: str) -> str:
    out = io.StringIO()
    call_command("demo_clinic", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_loads_one_therapist_three_patients_and_eight_weeks_of_history() -> None:
    output = _load()
    therapist = Therapist.objects.get(user__username="therapist@demo.clinic")
    assert Patient.objects.filter(therapist=therapist).count() == 3
    first = timezone.localtime(ExerciseSession.objects.earliest("started_at").started_at)
    assert 50 <= (timezone.localdate() - first.date()).days <= 56
    assert Repetition.objects.count() > 1000
    assert "http://127.0.0.1:8000" in output and "therapist@demo.clinic" in output
    rows = roster_for_therapist(therapist=therapist, today=timezone.localdate())
    assert all(row.adherence_28d is not None and row.last_session_at for row in rows)


@pytest.mark.django_db
def test_loading_again_changes_nothing_and_reset_rebuilds_the_same() -> None:
    _load()
    counts = (ExerciseSession.objects.count(), Repetition.objects.count())
    assert "already loaded" in _load()
    assert (ExerciseSession.objects.count(), Repetition.objects.count()) == counts
    _load("--reset")
    assert (ExerciseSession.objects.count(), Repetition.objects.count()) == counts


@pytest.mark.django_db
def test_the_demo_logins_work() -> None:
    _load()
    therapist, patient = Client(), Client()
    assert password_login(therapist, username="therapist@demo.clinic", password="demo-therapist")
    assert password_login(patient, username="anna@demo.clinic", password="demo-patient")
    assert "Anna" in therapist.get(reverse("roster")).content.decode()
    assert "Heel slide" in patient.get(reverse("today")).content.decode()
