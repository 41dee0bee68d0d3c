"""Built-in handlers: `status` keeps the device's latest state, `event` stores a history row.

Both push the message to the WebSocket groups of the device's owner and of staff once it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from apps.mqtt_service.device_store import EventRow, StatusRow, get_store
from apps.mqtt_service.router import DeviceMessage, message_handler
from websocket.groups import STAFF_GROUP, user_group
from websocket.utils.senders import websocket_sender

logger = logging.getLogger(__name__)


# Concurrent pushes per process. The channel layer's Redis pool refuses (does not queue) callers beyond its
# size (100 connections by default) and each push uses up to two, so bursts must be throttled here.
MAX_CONCURRENT_PUSHES = 40

_push_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


class PushFailedError(Exception):
    """The row is stored but the live WebSocket push failed (the channel layer is unreachable)."""


def _push_limit() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _push_limits:
        _push_limits[loop] = asyncio.Semaphore(MAX_CONCURRENT_PUSHES)
    return _push_limits[loop]


async def push_to_websocket(message: DeviceMessage) -> None:
    payload = {
        "type": f"device.{message.kind}",
        "device": message.username,
        "data": message.payload,
        "received_at": message.received_at.isoformat(),
    }
    groups = [STAFF_GROUP]
    if message.owner_id is not None:
        groups.append(user_group(message.owner_id))
    async with _push_limit():
        results = await asyncio.gather(
            *(websocket_sender.asend_to_group(group, payload) for group in groups), return_exceptions=True
        )
    failures = [result for result in results if isinstance(result, Exception)]
    if failures:
        raise PushFailedError(repr(failures[0]))


@message_handler("status")
async def handle_status(message: DeviceMessage) -> None:
    await get_store().record_status(StatusRow(message.device_id, message.payload, message.received_at))
    await push_to_websocket(message)


@message_handler("event")
async def handle_event(message: DeviceMessage) -> None:
    await get_store().record_event(
        EventRow(message.device_id, message.kind, message.payload, message.received_at)
    )
    await push_to_websocket(message)
