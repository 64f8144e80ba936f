from typing import Any
from uuid import UUID

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from audit.admin import AuditedModelAdmin
from sessions.models import Alert, ExerciseSession, PainReport, Repetition, VideoUpload


class RepetitionInline(admin.TabularInline):
    model = Repetition
    extra = 0
    fields = readonly_fields = (
        "set_number",
        "index",
        "side",
        "rom_deg",
        "duration_s",
        "peak_velocity_dps",
        "form_flags",
    )


@admin.register(ExerciseSession)
class ExerciseSessionAdmin(AuditedModelAdmin):
    list_display = [
        "patient",
        "exercise",
        "side",
        "status",
        "started_at",
        "reps_counted",
        "best_rom_deg",
    ]
    list_filter = ["status", "exercise", "side", "started_at"]
    search_fields = ["patient__user__last_name", "exercise__name"]
    date_hierarchy = "started_at"
    list_select_related = ["patient__user", "exercise"]
    raw_id_fields = ["patient", "prescription"]
    inlines = [RepetitionInline]


@admin.register(Repetition)
class RepetitionAdmin(AuditedModelAdmin):
    list_display = ["session", "set_number", "index", "rom_deg", "duration_s", "peak_velocity_dps"]
    list_filter = ["side", "session__exercise"]
    search_fields = ["session__patient__user__last_name"]
    list_select_related = ["session__exercise"]
    raw_id_fields = ["session"]

    def audit_patient_id(self, obj: Model) -> UUID | None:
        # A repetition's patient is its session's.
        rows = Repetition.objects.filter(pk=obj.pk).values_list("session__patient_id", flat=True)
        return rows.first()


@admin.register(PainReport)
class PainReportAdmin(AuditedModelAdmin):
    list_display = ["patient", "pain_nrs", "effort_borg", "reported_at"]
    list_filter = ["pain_nrs", "reported_at"]
    search_fields = ["patient__user__last_name", "comment"]
    list_select_related = ["patient__user"]
    raw_id_fields = ["session"]


@admin.register(Alert)
class AlertAdmin(AuditedModelAdmin):
    list_display = ["patient", "kind", "message", "created_at", "acknowledged_at"]
    list_filter = ["kind", ("acknowledged_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["patient__user__last_name", "message"]
    list_select_related = ["patient__user"]


@admin.register(VideoUpload)
class VideoUploadAdmin(AuditedModelAdmin):
    """Read-only: an upload's state is the analysis's to write. The landmarks are shown by size
    only (a binary archive), and nothing here leads to the video: it is deleted once analysed."""

    list_display = ["created_at", "patient", "exercise", "purpose", "status", "frames_total"]
    list_filter = ["status", "purpose", "created_at"]
    search_fields = ["patient__user__last_name", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["patient__user", "exercise"]
    exclude = ["landmarks"]
    readonly_fields = ["landmarks_size"]

    @admin.display(description="Landmarks")
    def landmarks_size(self, obj: VideoUpload) -> str:
        data = VideoUpload.objects.filter(pk=obj.pk).values_list("landmarks", flat=True).first()
        return f"{len(data):,} bytes (npz)" if data else "none"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("landmarks")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
