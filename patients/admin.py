from uuid import UUID

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Model

from audit.admin import AuditedModelAdmin
from patients.models import (
    Assignment,
    Exercise,
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


User = get_user_model()

# Registered by django.contrib.auth, which comes before this app in INSTALLED_APPS.
admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(AuditedModelAdmin, UserAdmin):
    def audit_patient_id(self, obj: Model) -> UUID | None:
        # A patient's account holds their name and e-mail address.
        return Patient.objects.filter(user_id=obj.pk).values_list("pk", flat=True).first()
