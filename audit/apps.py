from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Auth signals (sign-in, failed sign-in, sign-out) and the SQLite guard function.
        from audit import receivers  # noqa: F401
