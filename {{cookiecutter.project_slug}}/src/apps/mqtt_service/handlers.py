"""Built-in handlers: `status` keeps the device's latest state, `event` stores a history row.

Both push the message to the WebSocket groups of the device's owner and of staff once it is stored.
"""

from __future__ import annotations

import asyncio
import logging

from apps.mqtt_service.device_store import EventRow, StatusRow, get_store
from apps.mqtt_service.router import DeviceMessage, message_handler
from websocket.groups import STAFF_GROUP, user_group
from websocket.utils.senders import websocket_sender

logger = logging.getLogger(__name__)


class PushFailedError(Exception):
    """The row is stored but the live WebSocket push failed (the channel layer is unreachable)."""


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
