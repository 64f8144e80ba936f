"""Signal receivers: sign-in, failed sign-in and sign-out, and the SQLite guard function on every
new database connection (audit/purge.py)."""

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.purge import sqlite_install_guard
from audit.services import audit_record


@receiver(user_logged_in, dispatch_uid="audit_login")
def on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_record(action=AuditEvent.Action.LOGIN, request=request, user=user)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Only the name that was typed (escaped by audit_record); never the password, although
    # Django masks it in `credentials` already.
    username = str(credentials.get("username", ""))
    audit_record(
        action=AuditEvent.Action.LOGIN_FAILED,
        request=request,
        detail=f"username: {username}",
    )


@receiver(user_logged_out, dispatch_uid="audit_logout")
def on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:  # signing out without being signed in changes nothing
        audit_record(action=AuditEvent.Action.LOGOUT, request=request, user=user)


@receiver(connection_created, dispatch_uid="audit_sqlite_guard")
def on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        sqlite_install_guard(connection)
