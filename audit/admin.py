from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


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
