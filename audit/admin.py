"""The audit trail in the Django admin: its entries, read-only; `AuditedModelAdmin`, which writes
an entry for every add, change and delete made through the admin."""

from typing import Any
from uuid import UUID

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.services import audit_record, patient_id_of

Action = AuditEvent.Action


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only (see audit/models.py)."""

    list_display = ["at", "actor_label", "action", "object_type", "object_id", "patient_id", "ip"]
    list_filter = ["action", "at"]
    search_fields = ["actor_label", "object_id", "path", "detail", "sha256"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ChangeMessage(list[Any]):
    """Django's change message for its own admin log, carrying to `log_change` the names of the
    fields the form changed. The message itself holds their labels and, for inline rows, each
    row's str(), which holds values (a prescription's: its sets and repetitions): the trail takes
    only the names."""

    def __init__(self, message: list[Any], *, field_names: list[str]) -> None:
        super().__init__(message)
        self.field_names = field_names


def _fields_detail(names: list[str]) -> str:
    return "fields: " + (", ".join(names) or "none")


class AuditedModelAdmin(admin.ModelAdmin):
    """A ModelAdmin that writes an audit entry for each object added, changed or deleted through
    it, the rows of its inlines included. Django's own admin log has them too, but it is not
    append-only. Deletions are written just before the objects go, as Django logs them."""

    def audit_patient_id(self, obj: Model) -> UUID | None:
        """The patient the object belongs to, if any. Override where the object reaches its
        patient through another one."""
        return patient_id_of(obj)

    def _audit(
        self,
        request: HttpRequest,
        action: AuditEvent.Action,
        obj: Model,
        *,
        parent: Model | None = None,
        detail: str = "",
    ) -> None:
        # An inline row belongs to the patient of the object it is edited with.
        patient_id = self.audit_patient_id(parent if parent is not None else obj)
        audit_record(action=action, request=request, obj=obj, patient_id=patient_id, detail=detail)

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        message = super().construct_change_message(request, form, formsets, add)
        return ChangeMessage(message, field_names=list(form.changed_data))

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, Action.ADMIN_ADDED, obj)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        # Django's admin views build their message with construct_change_message above. The
        # labels of a message made elsewhere are not copied (see ChangeMessage): no detail then.
        known = isinstance(message, ChangeMessage)
        detail = _fields_detail(message.field_names) if known else ""
        self._audit(request, Action.ADMIN_CHANGED, obj, detail=detail)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        # One entry per object: the delete page passes one, "delete selected" them all.
        for obj in queryset:
            self._audit(request, Action.ADMIN_DELETED, obj)
        return super().log_deletions(request, queryset)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: Any) -> None:
        # Deleted rows are written first: deleting an object clears its primary key.
        deleted = formset.deleted_forms
        for row in formset.initial_forms:
            if row in deleted:
                self._audit(request, Action.ADMIN_DELETED, row.instance, parent=form.instance)
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            self._audit(request, Action.ADMIN_ADDED, obj, parent=form.instance)
        for obj, names in formset.changed_objects:
            detail = _fields_detail(names)
            self._audit(request, Action.ADMIN_CHANGED, obj, parent=form.instance, detail=detail)
