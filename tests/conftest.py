"""The fixed cast: therapist A, therapist B, patient P (of A), patient Q (of B), anonymous.

`world` builds them through the real services, each with a protocol assigned for today, a
completed session with repetitions and a pain report, an open session, a custom exercise and an
open alert, so that every object-scoped URL has something to point at for every actor.
"""

import datetime
import functools
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from analysis.repetitions import RepetitionMetrics
from patients.models import Exercise, Patient, Protocol, Therapist
from patients.services import (
    PatientFields,
    assignment_save,
    exercise_save,
    patient_create,
    protocol_save,
    therapist_create,
)
from rehab.celery import app as celery_app
from reports.models import ProgressReport
from sessions.models import Alert, ExerciseSession
from sessions.services import (
    rep_record,
    session_complete,
    session_report,
    session_start,
)

PASSWORD = "correct horse battery staple"


@dataclass
class Practice:
    """One therapist with one patient and their records."""

    therapist: Therapist
    patient: Patient
    protocol: Protocol
    custom_exercise: Exercise
    completed_session: ExerciseSession
    open_session: ExerciseSession
    alert: Alert
    report: ProgressReport


@dataclass
class World:
    a: Practice
    b: Practice

    @property
    def p(self) -> Patient:
        return self.a.patient

    @property
    def q(self) -> Patient:
        return self.b.patient


def make_practice(prefix: str) -> Practice:
    therapist = therapist_create(
        email=f"therapist.{prefix}@example.org",
        first_name="Thera",
        last_name=prefix.upper(),
        password=PASSWORD,
    )
    patient = patient_create(
        therapist=therapist,
        fields=PatientFields(
            first_name="Pat",
            last_name=prefix.upper(),
            email=f"patient.{prefix}@example.org",
            condition="Total knee arthroplasty",
            affected_side="right",
        ),
    )
    patient.user.set_password(PASSWORD)
    patient.user.save()
    squat = Exercise.objects.get(slug="squat", owner=None)
    custom = Exercise(**Exercise.fields_from_definition(squat.definition()))
    custom.name = f"Wall squat {prefix}"
    custom.slug = f"wall_squat_{prefix}"
    custom = exercise_save(therapist=therapist, exercise=custom)
    line = {
        "side": "right",
        "sets": 2,
        "reps": 3,
        "hold_s": 0,
        "rest_s": 30,
        "target_rom_deg": 90.0,
        "sessions_per_week": 3,
        "notes": "",
    }
    protocol = protocol_save(
        therapist=therapist,
        protocol=None,
        name=f"Knee {prefix}",
        notes="",
        lines=[
            {**line, "exercise": Exercise.objects.get(slug="heel_slide", owner=None)},
            {**line, "exercise": custom},
        ],
    )
    today = timezone.localdate()
    assignment_save(
        patient=patient,
        protocol=protocol,
        start_date=today - datetime.timedelta(days=14),
        end_date=today + datetime.timedelta(days=14),
    )
    first, second = protocol.prescriptions.order_by("position")
    done = session_start(patient=patient, prescription=first, now=_earlier_today())
    # Half of the 2 x 3 prescribed (what counts towards the plan); mean ROM 81.5, best 82.
    for set_number, index, rom in ((1, 1, 81.0), (1, 2, 82.0), (2, 1, 81.5)):
        rep_record(session=done, data=rep_data(set_number=set_number, index=index, rom=rom))
    done = session_complete(session=done)
    session_report(session=done, pain_nrs=3, effort_borg=4.0)
    alert = Alert.objects.create(
        patient=patient, kind=Alert.Kind.PAIN_RISING, message="Pain rose from 2 to 5 in a week."
    )
    return Practice(
        therapist=therapist,
        patient=patient,
        protocol=protocol,
        custom_exercise=custom,
        completed_session=done,
        open_session=session_start(patient=patient, prescription=second),
        alert=alert,
        report=ready_report(patient),
    )


@functools.cache
def _small_pdf() -> bytes:
    from weasyprint import HTML

    return HTML(string="<p>Progress report</p>").write_pdf()


def ready_report(patient: Patient) -> ProgressReport:
    """A finished report row for the access tests. Making the real PDF for every test would
    cost seconds each: tests/reports/test_pdf.py makes real ones."""
    today = timezone.localdate()
    pdf = _small_pdf()
    return ProgressReport.objects.create(
        patient=patient,
        requested_by=patient.therapist.user,
        first_day=today - datetime.timedelta(days=29),
        last_day=today,
        status=ProgressReport.Status.READY,
        pdf=pdf,
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        pages=1,
    )


def _earlier_today() -> datetime.datetime:
    """Up to an hour ago, but still today: a test run just after midnight sees the same day."""
    now = timezone.localtime()
    since_midnight = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now - min(datetime.timedelta(hours=1), since_midnight / 2)


def rep_data(*, set_number: int, index: int, rom: float) -> RepetitionMetrics:
    return RepetitionMetrics(
        set_number=set_number,
        index=index,
        side="right",
        start_s=3.0 * index,
        end_s=3.0 * index + 2.5,
        min_deg=5.0,
        max_deg=5.0 + rom,
        rom_deg=rom,
        duration_s=2.5,
        peak_velocity_dps=95.0,
        form_flags=["trunk_lean"] if index == 2 else [],
        trace_deg=[5.0, 45.0, 5.0 + rom, 45.0, 5.0],
    )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def live_streams_unlimited(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Live streams are admitted whatever the pose capacity (sessions/socket_cap.py), here and in
    the processes tests start: most tests stream with no pose worker alive, several at once. The
    admission tests set their own capacity."""
    settings.LIVE_STREAMS_PER_POSE_WORKER = 0
    monkeypatch.setenv("LIVE_STREAMS_PER_POSE_WORKER", "0")


@pytest.fixture(autouse=True)
def fresh_cache(settings: Any) -> None:
    """Each test counts its rate limits from zero: a cache key prefix of its own (the cache may be
    the shared test Redis, which must not be flushed under other processes' feet)."""
    default = settings.CACHES["default"]
    settings.CACHES = {"default": {**default, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


def password_login(client: Client, *, username: str, password: str) -> bool:
    """Client.login through the authentication backends. Axes' backend refuses to work without
    the request (it keys lockouts on login and client IP), which Client.login does not pass."""
    request = RequestFactory().post(reverse("login"))
    return client.login(request=request, username=username, password=password)


@pytest.fixture
def world(db: None) -> World:
    return World(a=make_practice("a"), b=make_practice("b"))


def client_for(world: World, actor: str) -> Client:
    client = Client()
    users = {
        "therapist_a": world.a.therapist.user,
        "therapist_b": world.b.therapist.user,
        "patient_p": world.p.user,
        "patient_q": world.q.user,
    }
    if actor != "anonymous":
        client.force_login(users[actor])
    return client


CAST = ("therapist_a", "therapist_b", "patient_p", "patient_q", "anonymous")


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Celery tasks in-process whatever the environment (with REDIS_URL they would go to a
    worker that these tests do not start)."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager
