"""TEST-ONLY: channels_site's ASGI application, as a Channels project writes it.

thor-gateway tests.gateway.channels_site.asgi:application
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.gateway.channels_site.settings")

from django.core.asgi import get_asgi_application

# Django first (it sets itself up), then what imports the models and consumers.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from tests.gateway.channels_site.urls import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
