from django.contrib import admin

from audit.admin import AuditedModelAdmin
from patients.models import (
    Alert,
    Assignment,
    Exercise,
    PainReport,
    Patient,
    Prescription,
    Protocol,
    Therapist,
)


@admin.register(Therapist)
class TherapistAdmin(AuditedModelAdmin):
    list_display = ["__str__", "title", "clinic", "user"]
    search_fields = ["user__first_name", "user__last_name", "user__email", "clinic"]
    list_select_related = ["user"]


@admin.register(Patient)
class PatientAdmin(AuditedModelAdmin):
    list_display = ["__str__", "condition", "affected_side", "therapist", "created_at"]
    list_filter = ["affected_side", "therapist"]
    search_fields = ["user__first_name", "user__last_name", "user__email", "condition"]
    list_select_related = ["user", "therapist__user"]
    raw_id_fields = ["user"]


@admin.register(Exercise)
class ExerciseAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "joint", "motion", "camera_view", "laterality", "owner"]
    list_filter = ["joint", "plane", "camera_view", "angle_space", "laterality", "owner"]
    search_fields = ["name", "slug", "joint", "motion"]


class PrescriptionInline(admin.TabularInline):
    model = Prescription
    extra = 0
    autocomplete_fields = ["exercise"]


@admin.register(Protocol)
class ProtocolAdmin(AuditedModelAdmin):
    list_display = ["name", "therapist", "updated_at"]
    list_filter = ["therapist"]
    search_fields = ["name", "notes"]
    inlines = [PrescriptionInline]


@admin.register(Assignment)
class AssignmentAdmin(AuditedModelAdmin):
    list_display = ["patient", "protocol", "start_date", "end_date"]
    list_filter = ["protocol", "start_date"]
    search_fields = ["patient__user__last_name", "protocol__name"]
    date_hierarchy = "start_date"
    list_select_related = ["patient__user", "protocol"]


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
