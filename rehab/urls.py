from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from dashboard import urls as dashboard_urls
from dashboard.views import home
from patients.forms import EmailLoginForm
from sessions.health import PoseWorkers
from web.health import URL_PREFIX, HealthView, ReadinessView
from web.ratelimit import rate_limited
from web.signin_lifetime import session_keepalive
from web.views_metrics import metrics_view

urlpatterns = [
    path("", home, name="home"),
    path(
        "accounts/login/",
        rate_limited(key="login", methods={"POST"})(
            auth_views.LoginView.as_view(authentication_form=EmailLoginForm)
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/keep-alive/", session_keepalive, name="session_keepalive"),
    path(
        "accounts/set-password/<uidb64>/<token>/",
        rate_limited(key="password_set")(
            auth_views.PasswordResetConfirmView.as_view(
                template_name="registration/password_set.html",
                post_reset_login=True,
                # Named: with axes' backend first there are two, and login() must know which.
                post_reset_login_backend="django.contrib.auth.backends.ModelBackend",
                success_url="/",
            )
        ),
        name="password_set",
    ),
    path("clinic/", include("dashboard.urls")),
    path("clinic/", include("patients.urls")),
    path("sessions/", include("sessions.urls")),
    path("sessions/", include(dashboard_urls.patient_urlpatterns)),
    path("reports/", include("reports.urls")),
    path("audit/", include("audit.urls")),
    path("admin/", admin.site.urls),
    # Probes for compose and orchestrators: answered before sign-in and host checks (web/health.py).
    path(f"{URL_PREFIX}live", HealthView.as_view(), name="health_live"),
    path(f"{URL_PREFIX}ready", ReadinessView.as_view(checks=[PoseWorkers]), name="health_ready"),
    path("metrics", metrics_view, name="metrics"),  # for Prometheus; not public
]
