"""ASGI entry point: plain HTTP goes to Django, WebSockets to Channels behind origin and session checks."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models (the auth middleware and consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.startup_heap import collect_fully_less_often, freeze_startup_heap  # noqa: E402
from websocket.origins import AllowedHostsOriginValidator  # noqa: E402
from websocket.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin check first: a page on another site must not ride on our users' session cookies.
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
freeze_startup_heap()
collect_fully_less_often()
