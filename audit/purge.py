"""The one way past the database triggers that keep the audit trail from being emptied.

The triggers of migration 0002 refuse every UPDATE (but the actor's ON DELETE SET NULL) and every
row DELETE. Emptying the whole table is allowed only inside `purge_allowed`, which only the
`flush` management command uses (audit/management/commands/flush.py): `manage.py flush` empties
the whole database, and Django's test runner flushes it after every transactional test.

- PostgreSQL: a statement trigger refuses TRUNCATE unless the session setting
  `audit.allow_purge` is 'on'; row DELETE stays refused even then.
- SQLite has no TRUNCATE (flush runs DELETE FROM) and no session settings: the DELETE trigger
  asks the connection function `audit_purge_allowed()`, which answers 0 except here. A client
  that does not define it (the sqlite3 shell) gets "no such function": refused as well.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

SQLITE_FUNCTION = "audit_purge_allowed"


def _sqlite_answer(connection: BaseDatabaseWrapper, allowed: bool) -> None:
    connection.ensure_connection()
    raw: Any = connection.connection
    raw.create_function(SQLITE_FUNCTION, 0, (lambda: 1) if allowed else (lambda: 0))


def sqlite_install_guard(connection: BaseDatabaseWrapper) -> None:
    """Define `audit_purge_allowed()` (answering 0) on a new SQLite connection."""
    _sqlite_answer(connection, False)


@contextmanager
def purge_allowed(*, using: str) -> Iterator[None]:
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('audit.allow_purge', 'on', false)")
        try:
            yield
        finally:
            # Session-level: connections go back to a pool, which must not keep the permit.
            with connection.cursor() as cursor:
                cursor.execute("RESET audit.allow_purge")
    elif connection.vendor == "sqlite":
        _sqlite_answer(connection, True)
        try:
            yield
        finally:
            _sqlite_answer(connection, False)
    else:
        yield
