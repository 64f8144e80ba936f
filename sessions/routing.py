from django.urls import path

from sessions.consumers import SessionConsumer

websocket_urlpatterns = [
    path("ws/sessions/<uuid:session_id>/live/", SessionConsumer.as_asgi()),
]
