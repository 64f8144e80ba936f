from typing import Any

from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_migrate

        from patients.session_lifetime import on_user_logged_in

        # The built-in library lives in analysis.exercises; after every migrate the table follows.
        post_migrate.connect(_sync_library, sender=self, dispatch_uid="exercise_library_sync")
        # Every sign-in starts its idle and absolute clocks (patients/session_lifetime.py).
        user_logged_in.connect(on_user_logged_in, dispatch_uid="session_clock_start")


def _sync_library(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from patients.services import exercise_library_sync

    exercise_library_sync(using=using)
