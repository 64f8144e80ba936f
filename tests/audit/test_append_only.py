"""Entries cannot be changed or deleted: not by the model, not by a QuerySet, not by raw SQL.
Run on SQLite and on PostgreSQL (each has its own triggers, migration 0002)."""

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse

from audit.models import AppendOnlyError, AuditEvent
from audit.services import audit_record
from tests.conftest import PASSWORD

Action = AuditEvent.Action


@pytest.fixture
def event(db: None) -> AuditEvent:
    return audit_record(action=Action.LOGIN_FAILED, detail="username: mallory@example.org")


def stored(event: AuditEvent) -> Any:
    return AuditEvent.objects.filter(pk=event.pk).values().get()


def refused_by_the_database(sql: str, params: list | None = None) -> None:
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


# --- The ORM -------------------------------------------------------------------------------------


def test_an_entry_cannot_be_saved_again(event: AuditEvent) -> None:
    before = stored(event)
    event.detail = "username: alice@example.org"
    with pytest.raises(AppendOnlyError):
        event.save()
    assert stored(event) == before


def test_an_entry_cannot_be_deleted(event: AuditEvent) -> None:
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_queryset_cannot_update_or_delete_entries(event: AuditEvent) -> None:
    before = stored(event)
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(detail="nothing happened")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    event.detail = "nothing happened"
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["detail"])
    assert stored(event) == before


def test_the_base_manager_which_skips_the_queryset_is_stopped_by_the_database(
    event: AuditEvent,
) -> None:
    # Django's own machinery (deletion cascades) uses _base_manager, a plain QuerySet.
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditEvent._base_manager.filter(pk=event.pk).update(detail="nothing happened")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditEvent._base_manager.filter(pk=event.pk)._raw_delete(connection.alias)
    assert stored(event)["detail"] == "username: mallory@example.org"


# --- Raw SQL -------------------------------------------------------------------------------------


def test_raw_sql_cannot_update_an_entry(event: AuditEvent) -> None:
    before = stored(event)
    refused_by_the_database(
        "UPDATE audit_auditevent SET detail = %s WHERE id = %s", ["x", event.pk]
    )
    refused_by_the_database("UPDATE audit_auditevent SET at = at")  # not even to the same value
    assert stored(event) == before


def test_raw_sql_cannot_delete_an_entry(event: AuditEvent) -> None:
    refused_by_the_database("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    refused_by_the_database("DELETE FROM audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no TRUNCATE")
def test_raw_sql_cannot_truncate_the_table(event: AuditEvent) -> None:
    with connection.cursor() as cursor:
        # PostgreSQL refuses to TRUNCATE a table with deferred checks pending in the transaction
        # (the test's): run them now, so that the refusal seen is the trigger's.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    refused_by_the_database("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_an_entrys_actor_can_only_be_cleared_by_deleting_the_user(db: None) -> None:
    users = get_user_model().objects
    alice = users.create_user(username="alice@example.org", password=PASSWORD)
    bob = users.create_user(username="bob@example.org", password=PASSWORD)
    event = audit_record(action=Action.LOGIN, user=alice)
    # Pointing the entry at somebody else, or clearing it while changing anything else: refused.
    refused_by_the_database("UPDATE audit_auditevent SET actor_id = %s", [bob.pk])
    refused_by_the_database("UPDATE audit_auditevent SET actor_id = NULL, detail = 'x'")
    alice.delete()  # ON DELETE SET NULL, done by Django: the one UPDATE the trigger lets through
    assert stored(event)["actor_id"] is None
    assert stored(event)["actor_label"] == "alice@example.org"


# --- The admin -----------------------------------------------------------------------------------


def test_the_admin_shows_entries_but_cannot_add_change_or_delete_them(event: AuditEvent) -> None:
    staff = get_user_model().objects.create_superuser(
        username="root@example.org", email="root@example.org", password=PASSWORD
    )
    client = Client()
    client.force_login(staff)
    meta = AuditEvent._meta
    changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[event.pk])
    delete = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[event.pk])
    assert client.get(changelist).status_code == 200
    page = client.get(change)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(change, {"detail": "x"}).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add")).status_code == 403
    assert admin.site._registry[AuditEvent].get_actions(page.wsgi_request) == {}
    assert stored(event)["detail"] == "username: mallory@example.org"


# --- manage.py flush: the one deliberate purge ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_trail_and_the_guard_is_back_afterwards() -> None:
    # Django's test runner flushes after every transactional test (this one included); the
    # flush command is the only code that lifts the guard (audit/purge.py).
    audit_record(action=Action.LOGIN_FAILED, detail="before the flush")
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()
    event = audit_record(action=Action.LOGIN_FAILED, detail="after the flush")
    refused_by_the_database("DELETE FROM audit_auditevent")
    if connection.vendor == "postgresql":
        refused_by_the_database("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()
