from typing import Any

from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        # The built-in library lives in analysis.exercises; after every migrate the table follows.
        post_migrate.connect(_sync_library, sender=self, dispatch_uid="exercise_library_sync")


def _sync_library(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from patients.services import exercise_library_sync

    exercise_library_sync(using=using)
