from django.urls import path

from sessions import views

urlpatterns = [
    path("today/", views.today, name="today"),
    path("start/<uuid:prescription_id>/", views.start, name="session_start"),
    path("<uuid:session_id>/", views.detail, name="session_detail"),
    path("<uuid:session_id>/live/", views.live, name="session_live"),
    path("<uuid:session_id>/complete/", views.complete, name="session_complete"),
    path("<uuid:session_id>/report/", views.report, name="session_report"),
]
