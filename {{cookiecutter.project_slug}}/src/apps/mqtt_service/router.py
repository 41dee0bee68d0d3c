"""Route device messages by kind to handler functions.

Every kind the service subscribes to has a built-in handler (apps/mqtt_service/handlers.py: `status` keeps
the latest state, other kinds are stored as history). To give a kind its own, register it in an installed
app's `mqtt_handlers.py` (found with Django's autodiscover_modules when the service starts):

    from apps.mqtt_service.router import DeviceMessage, message_handler

    @message_handler("telemetry")
    async def store_telemetry(message: DeviceMessage) -> None:
        ...

It replaces the built-in handler of that kind. The kind must be one of the answered message kinds or of the
device protocol's own (`presence`, `reply`), or the handler never receives anything: the service subscribes
only to `<device prefix>/+/<kind>` for those (topology.SERVICE_KINDS).
A handler refuses a payload it cannot use by raising `apps.mqtt_service.payloads.PayloadRefusedError(reason,
detail)`: the service counts it under that reason, logs it (rate-limited) and carries on.

Two more registrations:
- `@message_observer`: `async def fn(message: DeviceMessage)` runs after the kind's handler for every device
  message of every kind (the devices app uses it to note that a device is alive);
- `@client_event_handler`: `async def fn(event: ClientEvent)` receives the broker's client events
  (`<event prefix>/<node>/clients/<clientid>/connected|disconnected`, settings.MQTT_PRESENCE_EVENT_PREFIX);
  the service subscribes to them only when one is registered.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.module_loading import autodiscover_modules

# The module name looked up in every installed app, and the module holding the built-in handlers.
HANDLER_MODULE_NAME = "mqtt_handlers"
BUILT_IN_HANDLERS = "apps.mqtt_service.handlers"


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


@dataclass(frozen=True)
class ClientEvent:
    """A broker event about one client connection (EMQX: `$SYS/brokers/<node>/clients/<clientid>/<event>`)."""

    node: str
    clientid: str
    event: str  # "connected" | "disconnected"
    topic: str
    payload: dict[str, Any]
    received_at: datetime


Handler = Callable[[DeviceMessage], Awaitable[None]]
ClientEventHandler = Callable[[ClientEvent], Awaitable[None]]

_handlers: dict[str, Handler] = {}
_observers: list[Handler] = []
_client_event_handlers: list[ClientEventHandler] = []


def message_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register `async def fn(message: DeviceMessage)` as the handler of `kind` (one handler per kind);
    it replaces the built-in handler of that kind."""

    def register(fn: Handler) -> Handler:
        existing = _handlers.get(kind)
        if existing is not None and existing is not fn:
            raise ValueError(f"a handler for kind {kind!r} is already registered: {existing.__qualname__}")
        _handlers[kind] = fn
        return fn

    return register


def get_handler(kind: str) -> Handler | None:
    """The handler registered for `kind` with @message_handler, if any (built-ins not included)."""
    return _handlers.get(kind)


def message_observer(fn: Handler) -> Handler:
    """Register `async def fn(message: DeviceMessage)` to run after the handler of every device message."""
    if fn not in _observers:
        _observers.append(fn)
    return fn


def message_observers() -> list[Handler]:
    return list(_observers)


def client_event_handler(fn: ClientEventHandler) -> ClientEventHandler:
    """Register the one handler of the broker's client events."""
    if _client_event_handlers and _client_event_handlers[0] is not fn:
        existing = _client_event_handlers[0].__qualname__
        raise ValueError(f"a client event handler is already registered: {existing}")
    _client_event_handlers[:] = [fn]
    return fn


def get_client_event_handler() -> ClientEventHandler | None:
    return _client_event_handlers[0] if _client_event_handlers else None


def registered_kinds() -> list[str]:
    return sorted(_handlers)


def load_handlers(kinds: Iterable[str]) -> dict[str, Handler]:
    """The handler of each kind: registered in an app's `mqtt_handlers` module, else the built-in one."""
    autodiscover_modules(HANDLER_MODULE_NAME)
    built_in = importlib.import_module(BUILT_IN_HANDLERS)
    return {kind: _handlers.get(kind) or built_in.default_handler(kind) for kind in kinds}


def describe(handler: Handler | ClientEventHandler) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"
