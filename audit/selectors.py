"""Reading the audit trail: a patient's access history for their therapist, everything for staff."""

from uuid import UUID

from audit.models import AuditEvent, AuditEventQuerySet

EVENTS_PER_PAGE = 50  # the access history and the audit log page alike


def events_of_patient(*, patient_id: UUID) -> AuditEventQuerySet:
    """Every entry about one patient, newest first (the (patient_id, at) index)."""
    return AuditEvent.objects.filter(patient_id=patient_id).order_by("-at", "-id")


def events_filtered(*, patient_id: UUID | None = None, action: str = "") -> AuditEventQuerySet:
    """The whole trail, newest first, optionally for one patient and one action."""
    events = AuditEvent.objects.order_by("-at", "-id")
    if patient_id is not None:
        events = events.filter(patient_id=patient_id)
    if action:
        events = events.filter(action=action)
    return events
