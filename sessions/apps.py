from django.apps import AppConfig


class ExerciseSessionsConfig(AppConfig):
    name = "sessions"
    # django.contrib.sessions already owns the label "sessions".
    label = "exercise_sessions"
    verbose_name = "Exercise sessions"
    default_auto_field = "django.db.models.BigAutoField"
