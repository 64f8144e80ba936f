from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from web.signin_lifetime import on_user_logged_in

        # Every sign-in starts its idle and absolute clocks (web/signin_lifetime.py).
        user_logged_in.connect(on_user_logged_in, dispatch_uid="session_clock_start")
