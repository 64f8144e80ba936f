from django.urls import path

from audit import views

# Included at the site's root (rehab/urls.py): the history lives next to the patient's pages.
urlpatterns = [
    path(
        "clinic/patients/<uuid:patient_id>/access/",
        views.patient_access_history,
        name="patient_access_history",
    ),
    path("audit/", views.audit_log, name="audit_log"),
]
