from django.urls import path

from sessions import views

urlpatterns = [
    path("today/", views.today, name="today"),
    path("start/<uuid:prescription_id>/", views.start, name="session_start"),
    path("<uuid:session_id>/", views.detail, name="session_detail"),
    path("<uuid:session_id>/live/", views.live, name="session_live"),
    path("<uuid:session_id>/complete/", views.complete, name="session_complete"),
    path("<uuid:session_id>/report/", views.report, name="session_report"),
    path("upload/", views.upload_new, name="upload_new"),
    path("patients/<uuid:patient_id>/upload/", views.upload_for_patient, name="upload_for_patient"),
    path("uploads/<uuid:upload_id>/", views.upload_detail, name="upload_detail"),
    path("uploads/<uuid:upload_id>/status/", views.upload_status, name="upload_status"),
    path(
        "uploads/<uuid:upload_id>/landmarks/<slug:fmt>/", views.upload_export, name="upload_export"
    ),
]
