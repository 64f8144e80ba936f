from django.urls import path

from patients import views

# Included under /clinic/, next to the dashboard's roster and patient page.
urlpatterns = [
    path("patients/new/", views.patient_new, name="patient_new"),
    path("patients/<uuid:patient_id>/edit/", views.patient_edit, name="patient_edit"),
    path(
        "patients/<uuid:patient_id>/access/",
        views.patient_access_history,
        name="patient_access_history",
    ),
    path("patients/<uuid:patient_id>/invite/", views.patient_reinvite, name="patient_reinvite"),
    path("patients/<uuid:patient_id>/assign/", views.assignment_new, name="assignment_new"),
    path("assignments/<uuid:assignment_id>/", views.assignment_edit, name="assignment_edit"),
    path("protocols/", views.protocol_list, name="protocol_list"),
    path("protocols/new/", views.protocol_new, name="protocol_new"),
    path("protocols/<uuid:protocol_id>/", views.protocol_edit, name="protocol_edit"),
    path("exercises/", views.exercise_list, name="exercise_list"),
    path("exercises/new/", views.exercise_new, name="exercise_new"),
    path("exercises/<uuid:exercise_id>/", views.exercise_detail, name="exercise_detail"),
    path("exercises/<uuid:exercise_id>/edit/", views.exercise_edit, name="exercise_edit"),
]
