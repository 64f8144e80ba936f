"""Database triggers that make audit_auditevent append-only, whatever the client.

Refused: every UPDATE, except the one Django's ON DELETE SET NULL makes when a user is deleted
(actor_id to NULL, every other column unchanged; actor_label keeps the name); every row DELETE;
on PostgreSQL every TRUNCATE. Emptying the table is possible only when the session says the purge
is deliberate, which only `manage.py flush` does (audit/purge.py, docs/audit.md).

SQLite note: Django remakes a SQLite table to alter it, and dropping the old table drops its
triggers. A later migration that alters this table must create them again (the tests in
tests/audit/test_append_only.py fail when they are missing).
"""

from django.db import migrations

POSTGRESQL = """
CREATE FUNCTION audit_event_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
        AND to_jsonb(NEW) - 'actor_id' = to_jsonb(OLD) - 'actor_id' THEN
        RETURN NEW;  -- ON DELETE SET NULL of the actor
    END IF;
    IF TG_OP = 'TRUNCATE' AND current_setting('audit.allow_purge', true) = 'on' THEN
        RETURN NULL;  -- manage.py flush (audit/purge.py)
    END IF;
    RAISE EXCEPTION 'audit trail is append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change();
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change();
"""

POSTGRESQL_REVERSE = """
DROP TRIGGER audit_event_no_truncate ON audit_auditevent;
DROP TRIGGER audit_event_append_only ON audit_auditevent;
DROP FUNCTION audit_event_refuse_change();
"""

# Every column but actor_id: an UPDATE may change nothing else.
_OTHER_COLUMNS = (
    "id",
    "at",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "path",
    "ip",
    "sha256",
    "detail",
)
_UNCHANGED = " AND ".join(f'NEW."{column}" IS OLD."{column}"' for column in _OTHER_COLUMNS)

SQLITE = [
    f"""
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent
WHEN NOT (OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL AND {_UNCHANGED})
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE refused'); END
""",
    # audit_purge_allowed() is defined on each connection by audit/receivers.py (answers 0).
    """
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent
WHEN audit_purge_allowed() IS NOT 1
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: DELETE refused'); END
""",
]

SQLITE_REVERSE = [
    "DROP TRIGGER audit_event_no_delete",
    "DROP TRIGGER audit_event_no_update",
]


def _statements(vendor: str, *, reverse: bool) -> list[str]:
    if vendor == "postgresql":
        return [POSTGRESQL_REVERSE if reverse else POSTGRESQL]
    if vendor == "sqlite":
        return SQLITE_REVERSE if reverse else SQLITE
    # Refuse rather than run without the guarantee the audit trail documents.
    raise NotImplementedError(f"audit: no append-only triggers for the {vendor} database")


def create_triggers(apps, schema_editor):
    for statement in _statements(schema_editor.connection.vendor, reverse=False):
        schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    for statement in _statements(schema_editor.connection.vendor, reverse=True):
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
