"""The WebSocket origin check, against ALLOWED_HOSTS as it is at each handshake."""

from typing import Any

from channels.security.websocket import OriginValidator
from django.conf import settings

_DEBUG_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


class AllowedHostsOriginValidator(OriginValidator):
    """Channels' check of the same name reads ALLOWED_HOSTS once, when the ASGI application is built; this one
    reads it at every handshake, so overriding the setting (a test pinning it, for one) takes effect.
    A page on another site must not ride on our users' session cookies."""

    def __init__(self, application: Any) -> None:
        self.application = application

    @property
    def allowed_origins(self) -> list[str]:  # type: ignore[override]
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            return _DEBUG_HOSTS
        return hosts
