"""Create or update the PostgreSQL role the application connects as, with least privilege.

The owner of the tables (the role that runs the migrations) could drop the audit trail's
triggers; the application's role cannot. It may read and write every table of the schema and
use its sequences, but on the audit trail only SELECT and INSERT, plus UPDATE of the actor
column alone (Django emulates the actor's ON DELETE SET NULL with an UPDATE; the trigger lets
exactly that through). No TRUNCATE, no DDL: it owns nothing and may not create in the schema.

Run it as the owner after every `migrate` (docker-compose.yml's `grant-app-role` service): it
grants on the tables that exist now, so tables added by later migrations are covered by the next
run. It is idempotent: every run revokes what the role holds on the schema's tables and
sequences and grants the same set again, in one transaction. The password comes from the
environment (POSTGRES_APP_PASSWORD), is sent to the server as a SCRAM verifier computed here
(libpq's PQencryptPasswordConn, as psql's \\password does), and is never printed or logged.
docs/audit.md, "Append-only".
"""

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from psycopg import Cursor, sql

from audit.models import AuditEvent

# The environment variable that holds the role's password.
ENV_VARIABLE = "POSTGRES_APP_PASSWORD"
TABLE_PRIVILEGES = sql.SQL("SELECT, INSERT, UPDATE, DELETE")
SEQUENCE_PRIVILEGES = sql.SQL("USAGE, SELECT")


def _refuse_a_role_that_can_act_as_the_owner(cursor: Cursor[Any], *, role: str) -> None:
    """Privileges limit nothing for a superuser, for the owner of the tables or a member of the
    owner's role (it can SET ROLE to the owner), nor for CREATEROLE (it can grant itself
    membership in the owner's role)."""
    cursor.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s", [role])
    superuser, createrole = cursor.fetchone() or (False, False)
    if superuser or createrole:
        attribute = "SUPERUSER" if superuser else "CREATEROLE"
        raise CommandError(f"role {role} has {attribute}: its privileges cannot be limited")
    cursor.execute(
        "SELECT DISTINCT owner FROM ("
        "  SELECT current_user::text AS owner"
        "  UNION SELECT tableowner::text FROM pg_tables WHERE schemaname = current_schema()"
        ") AS owners WHERE pg_has_role(%s, owner, 'MEMBER') ORDER BY owner",
        [role],
    )
    owners = [owner for (owner,) in cursor.fetchall()]
    if owners:
        raise CommandError(
            f"role {role} is, or may act as, {', '.join(owners)}, which owns the tables or runs"
            " this command: use a role of its own for the application"
        )


def app_role_grant(*, using: str, role: str, password: str) -> tuple[bool, int]:
    """Create the role (or set its password) and its privileges. Returns (created, tables)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise CommandError("grant_app_role needs PostgreSQL: SQLite has no roles or privileges")
    audit_table = AuditEvent._meta.db_table
    actor_column = AuditEvent._meta.get_field("actor").column
    with transaction.atomic(using=using):
        connection.ensure_connection()
        # psycopg's own connection, not Django's cursor: Django logs the SQL it runs (DEBUG),
        # and CREATE/ALTER ROLE carry the password (as a verifier, but still: not in logs).
        raw = connection.connection
        with raw.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_schema()")
            database, schema = cursor.fetchone()
            if schema is None:
                raise CommandError("the connection has no current schema (search_path)")
            verifier = raw.pgconn.encrypt_password(password.encode(), role.encode())
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            created = cursor.fetchone() is None
            if not created:  # checked before its password is touched
                _refuse_a_role_that_can_act_as_the_owner(cursor, role=role)
            create_or_alter = sql.SQL("CREATE" if created else "ALTER")
            cursor.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    create_or_alter, sql.Identifier(role), sql.Literal(verifier.decode())
                )
            )

            names = {
                "role": sql.Identifier(role),
                "database": sql.Identifier(database),
                "schema": sql.Identifier(schema),
                "audit": sql.Identifier(schema, audit_table),
                "actor": sql.Identifier(actor_column),
                "tables": TABLE_PRIVILEGES,
                "sequences": SEQUENCE_PRIVILEGES,
            }
            for statement in (
                "GRANT CONNECT ON DATABASE {database} TO {role}",
                "GRANT USAGE ON SCHEMA {schema} TO {role}",
                "REVOKE CREATE ON SCHEMA {schema} FROM {role}",
                # From a clean slate: this also drops TRUNCATE, REFERENCES, TRIGGER and column
                # privileges granted by hand, so every run ends in the same state.
                "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
                "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}",
                "GRANT {tables} ON ALL TABLES IN SCHEMA {schema} TO {role}",
                "GRANT {sequences} ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
                # Revoking UPDATE on the table revokes it on every column as well.
                "REVOKE UPDATE, DELETE ON {audit} FROM {role}",
                "GRANT UPDATE ({actor}) ON {audit} TO {role}",
            ):
                cursor.execute(sql.SQL(statement).format(**names))

            # CREATE may still come from PUBLIC (the default before PostgreSQL 15).
            cursor.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", [role, schema])
            (can_create,) = cursor.fetchone()
            if can_create:
                raise CommandError(
                    f"role {role} may still create objects in schema {schema} (granted to PUBLIC"
                    f" or a role it belongs to): as the owner, REVOKE CREATE ON SCHEMA {schema}"
                    " FROM PUBLIC"
                )
            cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", [schema])
            (tables,) = cursor.fetchone()
    return created, tables


class Command(BaseCommand):
    help = (
        "Create or update the least-privilege PostgreSQL role the application connects as: read"
        " and write on every table, only SELECT, INSERT and UPDATE of the actor on the audit"
        f" trail. Its password comes from ${ENV_VARIABLE}. Run as the owner after migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="the role's name (the user of the app's DATABASE_URL)")
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="the database connection to use (its user must own the tables)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        role: str = options["role"]
        password = os.environ.get(ENV_VARIABLE, "")
        if not password:
            raise CommandError(f"set {ENV_VARIABLE}: the password of role {role}")
        created, tables = app_role_grant(using=options["database"], role=role, password=password)
        self.stdout.write(
            f"Role {role} {'created' if created else 'updated'}: read and write on {tables}"
            f" tables; on {AuditEvent._meta.db_table} only SELECT, INSERT and UPDATE"
            f" ({AuditEvent._meta.get_field('actor').column})."
        )
