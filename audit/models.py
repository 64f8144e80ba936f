"""The audit trail: who did what to which record, when and from where. Append-only.

Rows are written by `audit.services.audit_record` only. Nothing in the application changes or
deletes them: the model and its QuerySet refuse, the admin is read-only, and database triggers
(migration 0002) refuse UPDATE and DELETE whatever the client. docs/audit.md has the details.
"""

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyError(RuntimeError):
    """An attempt to change or delete an audit entry."""


def _refuse(what: str) -> NoReturn:
    raise AppendOnlyError(f"The audit trail is append-only: {what} is refused.")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        _refuse("update")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        _refuse("update")

    def delete(self) -> tuple[int, dict[str, int]]:
        _refuse("delete")

    def _raw_delete(self, using: str | None) -> int:
        _refuse("delete")


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        # Reads of a patient's data. The therapist's record page holds the progress charts.
        RECORD_VIEWED = "record_viewed", "Viewed the record and charts"
        SESSION_VIEWED = "session_viewed", "Viewed a session"
        REPORT_VIEWED = "report_viewed", "Viewed a progress report"
        AUDIT_VIEWED = "audit_viewed", "Viewed the access history"
        # Files that leave the application (with their SHA-256).
        REPORT_DOWNLOADED = "report_downloaded", "Downloaded a progress report (PDF)"
        CSV_EXPORTED = "csv_exported", "Exported repetitions (CSV)"
        FHIR_EXPORTED = "fhir_exported", "Exported observations (FHIR)"
        LANDMARKS_EXPORTED = "landmarks_exported", "Exported a recording's landmarks"
        # Changes.
        PATIENT_CREATED = "patient_created", "Added the patient"
        PATIENT_CHANGED = "patient_changed", "Changed the patient's details"
        PROTOCOL_CREATED = "protocol_created", "Created a protocol"
        PROTOCOL_CHANGED = "protocol_changed", "Changed a protocol"
        ASSIGNMENT_CREATED = "assignment_created", "Assigned a protocol"
        ASSIGNMENT_CHANGED = "assignment_changed", "Changed an assignment"
        PATIENT_REINVITED = "patient_reinvited", "Sent the patient a new invitation"
        ALERT_ACKNOWLEDGED = "alert_acknowledged", "Acknowledged an alert"
        # Changes made in the Django admin, on any audited model (audit.admin.AuditedModelAdmin).
        ADMIN_ADDED = "admin_added", "Added in the admin"
        ADMIN_CHANGED = "admin_changed", "Changed in the admin"
        ADMIN_DELETED = "admin_deleted", "Deleted in the admin"
        # Refused access: an object that is not the user's, answered 404.
        ACCESS_DENIED = "access_denied", "Was refused access"
        # Accounts.
        LOGIN = "login", "Signed in"
        LOGIN_FAILED = "login_failed", "Failed to sign in"
        LOGOUT = "logout", "Signed out"

    at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    # The actor's login when the entry was written: still readable once the user is deleted.
    actor_label = models.CharField(max_length=254, blank=True, editable=False)
    action = models.CharField(max_length=32, choices=Action.choices, editable=False)
    object_type = models.CharField(max_length=40, blank=True, editable=False)
    object_id = models.CharField(max_length=64, blank=True, editable=False)
    # Not a foreign key: the entries about a patient outlive the patient.
    patient_id = models.UUIDField(null=True, blank=True, editable=False)
    path = models.CharField(max_length=300, blank=True, editable=False)
    ip = models.GenericIPAddressField(null=True, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True, editable=False)
    detail = models.CharField(max_length=300, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["patient_id", "at"], name="audit_patient_at"),
            models.Index(fields=["at"], name="audit_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label or '-'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse("changing an entry")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("deleting an entry")
