from django.apps import AppConfig


class ExerciseSessionsConfig(AppConfig):
    name = "sessions"
    # django.contrib.sessions already owns the label "sessions".
    label = "exercise_sessions"
    verbose_name = "Exercise sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_save

        from sessions.live_users import on_user_logged_out, on_user_saved

        # Live sockets follow their user's sign-in (sessions/live_users.py).
        user_logged_out.connect(on_user_logged_out, dispatch_uid="live_sockets_sign_out")
        post_save.connect(
            on_user_saved, sender=get_user_model(), dispatch_uid="live_sockets_deactivation"
        )
