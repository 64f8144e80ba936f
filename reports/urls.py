from django.urls import path

from reports import views

urlpatterns = [
    path("patients/<uuid:patient_id>/new/", views.report_new, name="report_new"),
    path("patients/<uuid:patient_id>/repetitions.csv", views.export_csv, name="export_csv"),
    path("patients/<uuid:patient_id>/fhir.json", views.export_fhir, name="export_fhir"),
    path("<uuid:report_id>/", views.report_detail, name="report_detail"),
    path("<uuid:report_id>/status/", views.report_status, name="report_status"),
    path("<uuid:report_id>/download/", views.report_download, name="report_download"),
]
