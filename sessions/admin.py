from uuid import UUID

from django.contrib import admin
from django.db.models import Model

from audit.admin import AuditedModelAdmin
from sessions.models import Alert, ExerciseSession, PainReport, Repetition


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
