from django.urls import path

from dashboard import views

# Included under /clinic/, next to the patients app's pages.
urlpatterns = [
    path("patients/", views.roster, name="roster"),
    path("patients/<uuid:patient_id>/", views.patient_detail, name="patient_detail"),
    path("alerts/<uuid:alert_id>/acknowledge/", views.alert_ack, name="alert_acknowledge"),
]

# Included under /sessions/, next to the sessions app's patient pages.
patient_urlpatterns = [
    path("history/", views.history, name="history"),
]
