"""The application's database role (`manage.py grant_app_role`): it reads and writes the tables,
adds to the audit trail, but cannot change, delete or empty entries, nor alter any table or drop
the trail's triggers. The refusals come from PostgreSQL's privileges (InsufficientPrivilege),
before the triggers of migration 0002 are asked (they raise IntegrityError).

Most tests act as the role on Django's own connection (SET ROLE ... RESET ROLE) inside the
test's transaction; one commits and logs in as the role on a connection of its own.
"""

import io
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg import errors, sql
from psycopg.pq import TransactionStatus

from audit.management.commands.grant_app_role import ENV_VARIABLE
from audit.models import AuditEvent
from audit.services import audit_record
from patients.models import Patient
from patients.services import PatientFields, patient_create, therapist_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="database roles and privileges are PostgreSQL's: SQLite has neither",
)

Action = AuditEvent.Action
ROLE_PASSWORD = "role-password-" + secrets.token_urlsafe(12)


def transaction_failed() -> bool:
    """The test's transaction was broken by a failure: it is rolled back next, role and all."""
    raw = connection.connection
    return raw is not None and raw.info.transaction_status == TransactionStatus.INERROR


@pytest.fixture
def app_role(db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh role name (roles belong to the whole cluster, which other test runs share) and
    its password in the environment; the role is dropped afterwards if it was created."""
    role = f"rehab_app_test_{secrets.token_hex(6)}"
    monkeypatch.setenv(ENV_VARIABLE, ROLE_PASSWORD)
    yield role
    if transaction_failed():
        return
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone():
            # It owns nothing (REASSIGN OWNED is not needed); DROP OWNED removes its privileges.
            cursor.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def grant(role: str) -> str:
    out = io.StringIO()
    call_command("grant_app_role", role, stdout=out)
    return out.getvalue()


@contextmanager
def acting_as(role: str) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        yield
    finally:
        if not transaction_failed():  # else the rollback resets the role
            with connection.cursor() as cursor:
                cursor.execute("RESET ROLE")


def current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (user,) = cursor.fetchone()
    return str(user)


def refused_by_privilege(statement: str, params: list[Any] | None = None) -> None:
    with (
        pytest.raises(ProgrammingError) as refusal,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, params)
    # Not the trigger's IntegrityError ("append-only"): PostgreSQL's "permission denied".
    assert isinstance(refusal.value.__cause__, errors.InsufficientPrivilege), refusal.value


def allowed(statement: str, params: list[Any] | None = None) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def stored(event: AuditEvent) -> Any:
    return AuditEvent.objects.filter(pk=event.pk).values().get()


def privileges_of(role: str) -> list[tuple[str, str, str]]:
    """Every table, column and sequence privilege the role holds, as (object, column, type)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, '', privilege_type FROM information_schema.table_privileges"
            " WHERE grantee = %s"
            " UNION ALL SELECT table_name, column_name, privilege_type"
            " FROM information_schema.column_privileges WHERE grantee = %s"
            " UNION ALL SELECT c.relname, '', p.privilege_type FROM pg_class c,"
            " aclexplode(c.relacl) p WHERE c.relkind = 'S' AND p.grantee = %s::regrole"
            " ORDER BY 1, 2, 3",
            [role, role, role],
        )
        return [tuple(row) for row in cursor.fetchall()]


# --- The audit trail -----------------------------------------------------------------------------


def test_the_role_adds_entries_to_the_trail_and_reads_them(app_role: str) -> None:
    assert "created" in grant(app_role)
    with acting_as(app_role):
        assert current_user() == app_role
        event = audit_record(action=Action.LOGIN_FAILED, detail="username: eve@example.org")
        assert stored(event)["detail"] == "username: eve@example.org"
    assert current_user() != app_role


def test_the_role_cannot_change_delete_or_empty_the_trail(app_role: str) -> None:
    grant(app_role)
    event = audit_record(action=Action.LOGIN_FAILED, detail="username: mallory@example.org")
    before = stored(event)
    # The owner's DELETE of no row passes (no row, no trigger); the role's is refused all the
    # same: the privilege is checked before any row is touched.
    assert allowed("DELETE FROM audit_auditevent WHERE false") == 0
    with acting_as(app_role):
        refused_by_privilege("UPDATE audit_auditevent SET detail = 'x' WHERE id = %s", [event.pk])
        refused_by_privilege("UPDATE audit_auditevent SET at = at")
        refused_by_privilege("UPDATE audit_auditevent SET actor_id = NULL, detail = 'x'")
        refused_by_privilege("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
        refused_by_privilege("DELETE FROM audit_auditevent WHERE false")
        refused_by_privilege("TRUNCATE audit_auditevent")
    assert stored(event) == before


def test_the_role_cannot_alter_the_trail_or_drop_its_triggers(app_role: str) -> None:
    grant(app_role)
    with acting_as(app_role):
        refused_by_privilege("DROP TRIGGER audit_event_append_only ON audit_auditevent")
        refused_by_privilege("ALTER TABLE audit_auditevent DISABLE TRIGGER ALL")
        refused_by_privilege("DROP FUNCTION audit_event_refuse_change()")
        refused_by_privilege("DROP TABLE audit_auditevent")
        # Any session may set the flush's permit for the TRUNCATE trigger (audit/purge.py); the
        # missing privilege is what stops this one.
        allowed("SET audit.allow_purge = 'on'")
        refused_by_privilege("TRUNCATE audit_auditevent")
        allowed("RESET audit.allow_purge")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_auditevent'::regclass"
            " AND tgname IN ('audit_event_append_only', 'audit_event_no_truncate')"
            " AND tgenabled = 'O'"
        )
        assert cursor.fetchone() == (2,)


def test_deleting_a_user_as_the_role_keeps_their_entries_without_the_actor(
    app_role: str,
) -> None:
    grant(app_role)
    with acting_as(app_role):
        alice = get_user_model().objects.create_user(username="alice@example.org")
        event = audit_record(action=Action.LOGIN, user=alice)
        # Django emulates ON DELETE SET NULL: UPDATE ... SET actor_id = NULL, the one column
        # the role may update (and the one UPDATE the trigger lets through).
        alice.delete()
        assert stored(event)["actor_id"] is None
        assert stored(event)["actor_label"] == "alice@example.org"
        # The column privilege is not a way around the trigger: pointing at someone else fails.
        bob = get_user_model().objects.create_user(username="bob@example.org")
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            AuditEvent._base_manager.filter(pk=event.pk).update(actor_id=bob.pk)


# --- Everything else -----------------------------------------------------------------------------


def test_the_role_writes_the_ordinary_tables(app_role: str) -> None:
    grant(app_role)
    with acting_as(app_role):
        therapist = therapist_create(
            email="therapist.r@example.org", first_name="Thera", last_name="R", password=PASSWORD
        )
        patient = patient_create(
            therapist=therapist,
            fields=PatientFields(
                first_name="Pat",
                last_name="R",
                email="patient.r@example.org",
                condition="Rotator cuff repair",
                affected_side="left",
            ),
        )
        assert Patient.objects.filter(pk=patient.pk).update(condition="Frozen shoulder") == 1
        patient.user.delete()  # cascades to the patient
        assert not Patient.objects.filter(pk=patient.pk).exists()
        # ... but no TRUNCATE anywhere.
        refused_by_privilege("TRUNCATE patients_patient CASCADE")
        refused_by_privilege("TRUNCATE django_session")


def test_the_role_cannot_create_or_alter_tables(app_role: str) -> None:
    grant(app_role)
    with acting_as(app_role):
        refused_by_privilege("CREATE TABLE app_role_probe (id integer)")
        refused_by_privilege("CREATE TABLE public.app_role_probe (id integer)")
        refused_by_privilege("ALTER TABLE patients_patient ADD COLUMN probe integer")
        refused_by_privilege("CREATE INDEX app_role_probe ON patients_patient (condition)")
        refused_by_privilege("DROP TABLE patients_patient CASCADE")


def test_a_table_added_by_a_later_migration_is_covered_by_the_next_run(app_role: str) -> None:
    grant(app_role)
    allowed("CREATE TABLE later_table (id serial, note text)")
    with acting_as(app_role):
        refused_by_privilege("INSERT INTO later_table (note) VALUES ('x')")
    grant(app_role)
    with acting_as(app_role):
        assert allowed("INSERT INTO later_table (note) VALUES ('x')") == 1
        assert allowed("UPDATE later_table SET note = 'y'") == 1
        assert allowed("DELETE FROM later_table") == 1


# --- The command ---------------------------------------------------------------------------------


def test_running_the_command_again_ends_in_the_same_privileges(app_role: str) -> None:
    assert "created" in grant(app_role)
    first = privileges_of(app_role)
    assert ("audit_auditevent", "", "INSERT") in first
    assert ("audit_auditevent", "", "SELECT") in first
    assert ("audit_auditevent", "actor_id", "UPDATE") in first
    assert ("audit_auditevent", "detail", "UPDATE") not in first
    assert ("audit_auditevent", "", "UPDATE") not in first
    assert ("patients_patient", "", "DELETE") in first
    assert not [privilege for privilege in first if privilege[2] in ("TRUNCATE", "TRIGGER")]
    assert "updated" in grant(app_role)
    assert privileges_of(app_role) == first
    # What was added by hand is taken back by the next run.
    allowed(
        sql.SQL("GRANT TRUNCATE, UPDATE ON audit_auditevent TO {}")
        .format(sql.Identifier(app_role))
        .as_string(connection.connection)
    )
    assert privileges_of(app_role) != first
    grant(app_role)
    assert privileges_of(app_role) == first


def test_the_command_never_shows_the_password(
    app_role: str, caplog: pytest.LogCaptureFixture
) -> None:
    out, err = io.StringIO(), io.StringIO()
    with caplog.at_level(logging.DEBUG), CaptureQueriesContext(connection) as queries:
        call_command("grant_app_role", app_role, verbosity=3, stdout=out, stderr=err)
        call_command("grant_app_role", app_role, verbosity=3, stdout=out, stderr=err)
    shown = [out.getvalue(), err.getvalue(), caplog.text, *(q["sql"] for q in queries)]
    assert app_role in out.getvalue()
    assert not [text for text in shown if ROLE_PASSWORD in text]
    # The server got a SCRAM verifier, not the password.
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [app_role])
        (verifier,) = cursor.fetchone()
    assert verifier.startswith("SCRAM-SHA-256$") and ROLE_PASSWORD not in verifier


def test_the_command_refuses_without_a_password(
    app_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VARIABLE)
    with pytest.raises(CommandError, match=ENV_VARIABLE):
        grant(app_role)
    monkeypatch.setenv(ENV_VARIABLE, "")
    with pytest.raises(CommandError, match=ENV_VARIABLE):
        grant(app_role)


def test_the_command_refuses_a_role_that_can_act_as_the_owner(app_role: str) -> None:
    # The test database's owner is a superuser.
    with pytest.raises(CommandError, match="SUPERUSER"):
        grant(current_user())
    # A role that owns a table of the schema: it could drop triggers whatever it is granted.
    owner = sql.Identifier(app_role)
    allowed(sql.SQL("CREATE ROLE {} LOGIN").format(owner).as_string(connection.connection))
    allowed("CREATE TABLE owned_elsewhere (id integer)")
    allowed(
        sql.SQL("ALTER TABLE owned_elsewhere OWNER TO {}")
        .format(owner)
        .as_string(connection.connection)
    )
    with pytest.raises(CommandError, match="owns the tables"):
        grant(app_role)
    # Refused before granting anything: it holds only what it owns.
    assert {table for table, _, _ in privileges_of(app_role)} == {"owned_elsewhere"}


# --- Logging in as the role ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_role_logs_in_and_is_held_to_its_privileges(app_role: str) -> None:
    grant(app_role)  # committed: visible to a connection of its own
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        dbname=settings["NAME"],
        user=app_role,
        password=ROLE_PASSWORD,
        autocommit=True,
    ) as own:
        assert own.execute("SELECT current_user").fetchone() == (app_role,)
        row = own.execute(
            "INSERT INTO audit_auditevent"
            " (at, actor_label, action, object_type, object_id, path, sha256, detail)"
            " VALUES (now(), '', 'login_failed', '', '', '', '', 'from the role') RETURNING id"
        ).fetchone()
        assert row is not None
        assert own.execute(
            "SELECT detail FROM audit_auditevent WHERE id = %s", [row[0]]
        ).fetchone() == ("from the role",)
        for statement in (
            "UPDATE audit_auditevent SET detail = 'changed'",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
            "CREATE TABLE app_role_probe (id integer)",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                own.execute(statement)
    assert AuditEvent.objects.get(pk=row[0]).detail == "from the role"
