"""Writing the audit trail: `audit_record` is the one place entries are made."""

import ipaddress
import re
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import CharField, Model
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.text import escape_text
from web.client_ip import client_ip as shared_client_ip

_SHA256 = re.compile(r"[0-9a-f]{64}")
# Short, stable names for the objects in URLs (they match the URL keyword "<type>_id").
_OBJECT_TYPES = {"exercisesession": "session", "progressreport": "report"}
# The free-text columns: escaped and cut to their length.
_ESCAPED_FIELDS = ("actor_label", "object_type", "object_id", "path", "detail")


def _column_length(name: str) -> int:
    field = AuditEvent._meta.get_field(name)
    if not isinstance(field, CharField) or not field.max_length:
        raise TypeError(f"AuditEvent.{name} is not a CharField with a max_length")
    return field.max_length


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the login lockout and the rate limits see it (web/client_ip.py:
    REMOTE_ADDR, or behind the production TLS proxy the address it appended to
    X-Forwarded-For); None when it is not an IP address (a unix socket, a bare test request)."""
    try:
        return str(ipaddress.ip_address(shared_client_ip(request)))
    except ValueError:
        return None


def object_type_of(obj: Model) -> str:
    name = obj._meta.model_name or ""
    return _OBJECT_TYPES.get(name, name)


def patient_id_of(obj: Model | None) -> UUID | None:
    # Whatever belongs to a patient (the patient included) names them by `patient_id`.
    patient_id = getattr(obj, "patient_id", None)
    return patient_id if isinstance(patient_id, UUID) else None


def audit_record(
    *,
    action: AuditEvent.Action,
    request: HttpRequest | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
    obj: Model | None = None,
    object_type: str = "",
    object_id: str = "",
    patient_id: UUID | None = None,
    detail: str = "",
    sha256: str = "",
) -> AuditEvent:
    """Append one entry. The actor is `user`, else the request's user; the patient is
    `patient_id`, else the object's patient. Text is escaped and cut to its column's length
    (audit.text.escape_text); a malformed SHA-256 is refused."""
    if sha256 and not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 lower-case hex digits, not {sha256!r}")
    if user is None and request is not None:
        user = getattr(request, "user", None)
    actor = user if user is not None and user.is_authenticated else None
    fields: dict[str, Any] = {
        "action": action,
        "actor": actor,
        "actor_label": actor.get_username() if actor else "",
        "object_type": object_type_of(obj) if obj is not None else object_type,
        "object_id": str(obj.pk) if obj is not None else object_id,
        "patient_id": patient_id or patient_id_of(obj),
        "path": request.get_full_path() if request is not None else "",
        "ip": client_ip(request) if request is not None else None,
        "sha256": sha256,
        "detail": detail,
    }
    for name in _ESCAPED_FIELDS:
        fields[name] = escape_text(fields[name], limit=_column_length(name))
    event = AuditEvent(**fields)
    # The actor was just read from the request: validating the foreign key would cost a query.
    event.full_clean(exclude=["actor"])
    event.save()
    return event
