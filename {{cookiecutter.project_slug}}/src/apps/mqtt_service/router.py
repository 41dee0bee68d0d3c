"""Route device messages by kind to handler functions.

Register a handler anywhere with the decorator:

    from apps.mqtt_service.router import DeviceMessage, message_handler

    @message_handler("telemetry")
    async def store_telemetry(message: DeviceMessage) -> None:
        ...

and add the module's dotted path to HANDLER_MODULES below (the one place the handler service imports handlers
from). The kind must also be one of the answered message kinds, or the handler never receives anything: the
service subscribes only to `<device prefix>/+/<kind>` for those kinds.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

HANDLER_MODULES: tuple[str, ...] = ("apps.mqtt_service.handlers",)


@dataclass(frozen=True)
class DeviceMessage:
    """A validated message from a known, active device."""

    username: str
    kind: str
    topic: str
    payload: dict[str, Any]
    received_at: datetime
    qos: int
    retain: bool
    device_id: int
    owner_id: int | None


Handler = Callable[[DeviceMessage], Awaitable[None]]

_handlers: dict[str, Handler] = {}


def message_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register `async def fn(message: DeviceMessage)` as the handler of `kind` (one handler per kind)."""

    def register(fn: Handler) -> Handler:
        existing = _handlers.get(kind)
        if existing is not None and existing is not fn:
            raise ValueError(f"a handler for kind {kind!r} is already registered: {existing.__qualname__}")
        _handlers[kind] = fn
        return fn

    return register


def get_handler(kind: str) -> Handler | None:
    return _handlers.get(kind)


def registered_kinds() -> list[str]:
    return sorted(_handlers)


def load_handlers() -> list[str]:
    """Import every module in HANDLER_MODULES so their decorators run; returns the registered kinds."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)
    return registered_kinds()
