"""Refused access, recorded in one place.

Object-level access answers 404 for an object that is not the user's (patients.selectors), so
every refusal of a signed-in user is an Http404 leaving a view. Anonymous users never get that
far: they are sent to the login page.
"""

from typing import Any
from uuid import UUID

from django.http import Http404, HttpRequest
from django.utils.deprecation import MiddlewareMixin

from audit.models import AuditEvent
from audit.services import audit_record


class AccessDeniedAuditMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        user = getattr(request, "user", None)
        if isinstance(exception, Http404) and user is not None and user.is_authenticated:
            kwargs: dict[str, Any] = request.resolver_match.kwargs if request.resolver_match else {}
            object_type, object_id = _object_of(kwargs)
            patient_id = kwargs.get("patient_id")
            audit_record(
                action=AuditEvent.Action.ACCESS_DENIED,
                request=request,
                object_type=object_type,
                object_id=object_id,
                patient_id=patient_id if isinstance(patient_id, UUID) else None,
            )
        # Django answers the 404 as before.


def _object_of(kwargs: dict[str, Any]) -> tuple[str, str]:
    """("patient", "<uuid>") from the URL's {"patient_id": UUID(...)}."""
    for name, value in kwargs.items():
        if name.endswith("_id"):
            return name.removesuffix("_id"), str(value)
    return "", ""
