"""Built-in handlers: `status` keeps the device's latest state, `event` stores a history row.

Both push the message to the WebSocket groups of the device's owner and of staff once it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from apps.mqtt_service.batch import Batcher
from apps.mqtt_service.device_store import EventRow, StatusRow, get_store
from apps.mqtt_service.router import DeviceMessage, message_handler
from websocket.groups import STAFF_GROUP, user_group
from websocket.utils.senders import websocket_sender

logger = logging.getLogger(__name__)


class PushFailedError(Exception):
    """The row is stored but the live WebSocket push failed (the channel layer is unreachable)."""


Push = tuple[list[str], dict[str, Any]]

# One push batcher per event loop (its worker task and futures belong to that loop).
_push_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher[Push, BaseException | None]] = (
    weakref.WeakKeyDictionary()
)


# A flush costs about 0.3 ms of CPU per target group (channels_redis makes four Redis round trips per
# group_send) whatever its size: a small batch waits this long first, so pushes arriving meanwhile go out
# in the next, larger one instead of in many small ones.
PUSH_LINGER_SECONDS = 0.005
PUSH_LINGER_BELOW = 100


async def _flush_pushes(pushes: list[Push]) -> list[BaseException | None]:
    if len(pushes) < PUSH_LINGER_BELOW:
        await asyncio.sleep(PUSH_LINGER_SECONDS)
    # Payloads are built here from json.loads output and strings: already JSON, no need to re-check.
    results = await websocket_sender.asend_many(pushes, check_json=False)
    return [None if error is None else PushFailedError(repr(error)) for error in results]


def _push_batcher() -> Batcher[Push, BaseException | None]:
    loop = asyncio.get_running_loop()
    batcher = _push_batchers.get(loop)
    if batcher is None:
        # Pushes that arrive while one batch is being sent go out together in the next: under load, one
        # channel-layer message per group carries hundreds of events; alone, a push is sent at once.
        batcher = Batcher(_flush_pushes, max_batch=1000, name="websocket-pushes")
        _push_batchers[loop] = batcher
    return batcher


async def push_to_websocket(message: DeviceMessage) -> None:
    """Push to the owner's group and the staff group; a staff owner's socket gets it once."""
    payload = {
        "type": f"device.{message.kind}",
        "device": message.username,
        "data": message.payload,
        "received_at": message.received_at.isoformat(),
    }
    groups = [STAFF_GROUP]
    if message.owner_id is not None:
        groups.append(user_group(message.owner_id))
    await _push_batcher().submit((groups, payload))


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
