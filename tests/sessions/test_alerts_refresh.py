"""Alerts in the database: raised once per subject, quiet for a week after an acknowledgement,
refreshed after each session and every morning by Celery beat.

Patient P of the `world` has a plan of two exercises at 3 sessions a week each since 14 days and
one completed session: 1 of the 6 sessions prescribed in the last 7 days, a missed-sessions alert.
"""

import datetime
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from analysis import alerts
from analysis.alerts import Finding
from patients.models import Assignment, Patient
from patients.services import PatientFields, assignment_save, patient_create
from rehab.celery import app as celery_app
from sessions.models import Alert
from sessions.services import alert_acknowledge, alerts_refresh, rep_record, session_complete
from sessions.tasks import alerts_refresh_all, alerts_refresh_patient
from tests.conftest import World, rep_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _tasks_in_process(eager_celery: None) -> None:
    pass


def today() -> datetime.date:
    return timezone.localdate()


def keyed(patient: Patient) -> list[Alert]:
    return list(Alert.objects.filter(patient=patient).exclude(key="").order_by("created_at"))


def test_it_raises_an_alert_for_each_finding_with_its_key_and_message(world: World) -> None:
    [alert] = alerts_refresh(patient=world.p, today=today())
    assert (alert.kind, alert.key) == (Alert.Kind.MISSED_SESSIONS, "missed_sessions")
    assert alert.message.startswith("Did 1 of 6 prescribed sessions in the last 7 days (")
    assert alert.acknowledged_at is None
    assert keyed(world.q) == []  # another patient's numbers are not touched


def test_it_does_not_raise_an_alert_twice_while_it_is_open(world: World) -> None:
    first = alerts_refresh(patient=world.p, today=today())
    assert alerts_refresh(patient=world.p, today=today()) == []
    assert alerts_refresh(patient=world.p, today=today() + datetime.timedelta(days=1)) == []
    assert keyed(world.p) == first


def test_an_acknowledged_alert_stays_quiet_for_7_days_then_is_raised_again(world: World) -> None:
    [alert] = alerts_refresh(patient=world.p, today=today())
    alert_acknowledge(alert=alert, user=world.a.therapist.user)
    for days in range(7):
        later = today() + datetime.timedelta(days=days)
        assert alerts_refresh(patient=world.p, today=later) == [], days
    [again] = alerts_refresh(patient=world.p, today=today() + datetime.timedelta(days=7))
    assert again.key == "missed_sessions" and again.pk != alert.pk
    assert again.message.startswith("Did 0 of 6 prescribed sessions")  # today's numbers


def test_a_patient_without_findings_gets_no_alert(world: World) -> None:
    Assignment.objects.filter(patient=world.p).delete()  # nothing prescribed, nothing missed
    assert alerts_refresh(patient=world.p, today=today()) == []
    assert keyed(world.p) == []


def test_alert_kinds_of_the_rules_are_alert_kinds_of_the_model() -> None:
    assert set(alerts.KINDS) == set(Alert.Kind.values)


def test_the_database_allows_one_open_alert_per_patient_and_key(world: World) -> None:
    def add(key: str) -> Alert:
        return Alert.objects.create(
            patient=world.p, kind=Alert.Kind.PAIN_RISING, key=key, message="Pain rose."
        )

    first = add("pain_rising")
    with pytest.raises(IntegrityError), transaction.atomic():
        add("pain_rising")
    add("")  # alerts without a key (written by hand, like world.a.alert) are not limited
    alert_acknowledge(alert=first, user=world.a.therapist.user)
    add("pain_rising")  # a new one once the first is acknowledged
    Alert.objects.create(
        patient=world.q, kind=Alert.Kind.PAIN_RISING, key="pain_rising", message="Pain rose."
    )
    assert Alert.objects.filter(key="pain_rising").count() == 3


def test_a_refresh_that_loses_a_race_skips_the_alert_quietly(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another refresh (the daily run and a session ending together) inserts the same alert
    between this one's check and its insert: the constraint decides, without an error."""
    full_clean: Callable[..., None] = Alert.full_clean

    def racing_full_clean(alert: Alert, **kwargs: Any) -> None:
        full_clean(alert, **kwargs)
        Alert.objects.create(patient=alert.patient, kind=alert.kind, key=alert.key, message="x")

    monkeypatch.setattr(Alert, "full_clean", racing_full_clean)
    assert alerts_refresh(patient=world.p, today=today()) == []
    assert [alert.message for alert in keyed(world.p)] == ["x"]


def test_a_custom_exercises_long_key_and_message_are_stored_shortened_and_raised_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = "knee_" * 40  # custom form fault codes are slugified labels of any length
    finding = Finding("form_flags", f"form_flags:wall_squat_a:right:{code}", "Long. " * 60)
    monkeypatch.setattr(alerts, "evaluate", lambda *args, **kwargs: [finding])
    [alert] = alerts_refresh(patient=world.p, today=today())
    alert.full_clean()
    assert len(alert.key) == 120 and alert.key.startswith("form_flags:wall_squat_a:right:knee_")
    assert len(alert.message) == 300 and alert.message.endswith("…")
    assert alerts_refresh(patient=world.p, today=today()) == []


def test_completing_a_session_refreshes_the_patients_alerts_after_the_commit(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    session = world.a.open_session
    for index in (1, 2, 3):  # half of 2 x 3: the session counts towards the plan
        rep_record(session=session, data=rep_data(set_number=1, index=index, rom=85.0))
    with django_capture_on_commit_callbacks() as callbacks:
        session_complete(session=session)
        assert keyed(world.p) == []  # nothing before the commit
    assert len(callbacks) == 1
    callbacks[0]()
    [alert] = keyed(world.p)
    assert alert.message.startswith("Did 2 of 6 prescribed sessions")


def test_completing_a_session_again_queues_no_second_refresh(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        session_complete(session=world.a.completed_session)
    assert callbacks == []


def test_the_patient_task_returns_quietly_for_a_deleted_or_unknown_patient(world: World) -> None:
    patient_id = str(world.p.pk)
    world.p.user.delete()  # the patient goes with their login
    assert alerts_refresh_patient.delay(patient_id).get() == 0
    assert alerts_refresh_patient.delay(str(uuid.uuid4())).get() == 0


def test_the_patient_task_refreshes_that_patient_only(world: World) -> None:
    assert alerts_refresh_patient.delay(str(world.p.pk)).get() == 1
    assert [alert.key for alert in keyed(world.p)] == ["missed_sessions"]
    assert keyed(world.q) == []


def test_the_daily_task_refreshes_every_patient_with_a_plan_in_the_last_28_days(
    world: World,
) -> None:
    def patient(name: str, plan_ended_days_ago: int | None) -> Patient:
        created = patient_create(
            therapist=world.a.therapist,
            fields=PatientFields(
                first_name=name,
                last_name="X",
                email=f"{name}@example.org",
                condition="Knee",
                affected_side="left",
            ),
        )
        if plan_ended_days_ago is not None:
            end = today() - datetime.timedelta(days=plan_ended_days_ago)
            assignment_save(
                patient=created,
                protocol=world.a.protocol,
                start_date=end - datetime.timedelta(days=30),
                end_date=end,
            )
        return created

    recent = patient("recent", plan_ended_days_ago=27)  # its last day is in the 28 days
    old = patient("old", plan_ended_days_ago=28)
    planless = patient("planless", plan_ended_days_ago=None)

    assert alerts_refresh_all.delay().get() == 3  # P, Q and `recent`
    assert [a.key for a in keyed(world.p)] == [a.key for a in keyed(world.q)] == ["missed_sessions"]
    assert keyed(recent) == keyed(old) == keyed(planless) == []  # recent: its plan has ended
    assert alerts_refresh_all.delay().get() == 3
    assert Alert.objects.exclude(key="").count() == 2  # idempotent


def test_beat_runs_the_daily_task_at_6_in_the_morning_clinic_time() -> None:
    [entry] = [
        entry
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == alerts_refresh_all.name
    ]
    assert entry["task"] == "sessions.tasks.alerts_refresh_all"
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] == crontab(hour=6, minute=0)
    assert str(celery_app.timezone) == settings.TIME_ZONE
