from django.urls import path

from sessions.consumers import LiveSessionConsumer

websocket_urlpatterns = [
    path("ws/sessions/<uuid:session_id>/live/", LiveSessionConsumer.as_asgi()),
]
