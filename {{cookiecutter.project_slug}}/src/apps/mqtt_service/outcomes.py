"""What became of a tracked message: the publisher service tells the app that queued it.

An app that queues messages with a `Tracking` (see publish_queue.py) registers a listener under the name it
puts in `Tracking.outcome`, in its `mqtt_outcomes.py` (found with Django's autodiscover_modules when the
publisher service starts):

    from apps.mqtt_service.outcomes import PublishOutcome, publish_outcome

    @publish_outcome("commands")
    async def record(outcome: PublishOutcome) -> None:
        ...

The publisher awaits the listener before it acknowledges the entry, so an outcome is heard at least once
(again after a crash in between): listeners must be idempotent. A listener that raises is logged and counted
(`outcome_failed`); the message itself has gone out regardless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from django.utils.module_loading import autodiscover_modules

OUTCOME_MODULE_NAME = "mqtt_outcomes"

SENT = "sent"  # the broker acknowledged the message (written, for QoS 0)
EXPIRED = "expired"  # its deadline passed before it could be published: it was not published


@dataclass(frozen=True)
class PublishOutcome:
    command_id: str
    status: str  # SENT or EXPIRED
    at: datetime


Listener = Callable[[PublishOutcome], Awaitable[None]]

_listeners: dict[str, Listener] = {}


def publish_outcome(name: str) -> Callable[[Listener], Listener]:
    """Register `async def fn(outcome: PublishOutcome)` for tracked messages with Tracking.outcome `name`."""

    def register(fn: Listener) -> Listener:
        existing = _listeners.get(name)
        if existing is not None and existing is not fn:
            raise ValueError(f"an outcome listener {name!r} is already registered: {existing.__qualname__}")
        _listeners[name] = fn
        return fn

    return register


def load_listeners() -> dict[str, Listener]:
    """Every registered listener, after importing each installed app's `mqtt_outcomes` module."""
    autodiscover_modules(OUTCOME_MODULE_NAME)
    return dict(_listeners)
