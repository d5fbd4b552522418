"""TEST-ONLY: channels_site's HTTP routes (Django views) and WebSocket routes (consumers)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.gateway.channels_site import consumers


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"django over http", content_type="text/plain")


urlpatterns = [path("", index)]

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
    path("ws/async/<str:name>/", consumers.AsyncEchoConsumer.as_asgi()),
    path("ws/refuse/", consumers.RefusingConsumer.as_asgi()),
    path("ws/room/", consumers.RoomConsumer.as_asgi()),
]
