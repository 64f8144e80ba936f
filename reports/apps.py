from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Progress reports and exports"
    default_auto_field = "django.db.models.BigAutoField"
