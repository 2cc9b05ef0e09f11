"""WebSocket routes of every app, gathered in one list for asgi.py."""

from django.urls import path

from inference.consumers import ChatConsumer

websocket_urlpatterns: list = [
    path("ws/v1/chat/", ChatConsumer.as_asgi()),
]
