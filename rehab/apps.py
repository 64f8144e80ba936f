"""The project package as an app of its own, for what belongs to no feature app: the
deployment checks (rehab/checks.py), registered when Django is ready."""

from django.apps import AppConfig


class RehabConfig(AppConfig):
    name = "rehab"
    verbose_name = "Rehab (project)"

    def ready(self) -> None:
        # Importing registers the checks (django.core.checks.register decorators).
        from rehab import checks  # noqa: F401
