from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from patients.forms import EmailLoginForm
from patients.views import home

urlpatterns = [
    path("", home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=EmailLoginForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/set-password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="registration/password_set.html",
            post_reset_login=True,
            success_url="/",
        ),
        name="password_set",
    ),
    path("clinic/", include("patients.urls")),
    path("sessions/", include("sessions.urls")),
    path("reports/", include("reports.urls")),
    path("admin/", admin.site.urls),
]
