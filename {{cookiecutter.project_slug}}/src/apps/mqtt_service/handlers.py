"""Built-in handlers: every answered message kind works without writing code.

- `status` keeps the device's latest state (`Device.last_status`, `last_seen_at`);
- any other kind is stored as a history row (`DeviceEvent` with its kind).
Either way the message becomes the device's latest value of its kind (`Device.latest[kind]`).
Both then push the message to the WebSocket groups of the device's owner and of staff, as
`{"type": "device.<kind>", "device": ..., "data": ..., "received_at": ...}`.

Giving a kind its own handler
-----------------------------
Create `mqtt_handlers.py` in any installed app (for example `src/apps/devices/mqtt_handlers.py`); the
handler service imports every app's `mqtt_handlers` module at start (Django's autodiscover_modules):

    from apps.mqtt_service.handlers import push_to_websocket, store_history
    from apps.mqtt_service.router import DeviceMessage, message_handler

    @message_handler("alarm")
    async def handle_alarm(message: DeviceMessage) -> None:
        await store_history(message)          # keep the built-in behaviour, or write your own
        ...                                   # e.g. notify someone
        await push_to_websocket(message)

A registered handler replaces the built-in one for its kind (the service logs which handler serves each
kind when it starts). The kind must be one of the answered kinds (`apps/mqtt_service/topology.py`): the
service subscribes only to those. The payload reaching a handler is already checked (see payloads.py): a
JSON object that the database and the channel layer accept. For high volume, batch writes with
`apps.mqtt_service.batch.Batcher`, as `device_store` does: a failing item then fails alone.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
import weakref
from typing import Any

import redis

from apps.mqtt_service.batch import Batcher, Unavailable
from apps.mqtt_service.device_store import STATUS_KIND, EventRow, StatusRow, get_store
from apps.mqtt_service.router import DeviceMessage, Handler
from websocket.groups import STAFF_GROUP, user_group
from websocket.utils.senders import websocket_sender


class PushFailedError(Exception):
    """The message is stored but its live WebSocket push failed."""


class PushUnavailableError(PushFailedError, Unavailable):
    """The channel layer could not be reached: every push of the batch failed alike."""


# (groups, payload, push id)
Push = tuple[list[str], dict[str, Any], str]

# One push batcher per event loop (its worker task and futures belong to that loop).
_push_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher[Push, BaseException | None]] = (
    weakref.WeakKeyDictionary()
)

# A flush has a fixed cost whatever its size (two Redis round trips, websocket.channel_layer's
# group_send_many, and a channel-layer message per group for the server to pop): while fewer than
# PUSH_LINGER_BELOW pushes wait, the oldest waits up to this long, so pushes arriving meanwhile share
# its flush.
PUSH_LINGER_SECONDS = 0.005
PUSH_LINGER_BELOW = 100

# A push keeps its id when it is sent again alone (after its batch failed), so a socket that already got it
# drops the copy. A random process prefix plus a counter: a uuid4 per push cost more than sending it.
_PUSH_ID_PREFIX = uuid.uuid4().hex[:12]
_push_numbers = itertools.count()

_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


def _push_result(error: BaseException | None) -> BaseException | None:
    if error is None:
        return None
    if isinstance(error, _UNREACHABLE):
        return PushUnavailableError(repr(error))
    return PushFailedError(repr(error))


async def _flush_pushes(pushes: list[Push]) -> list[BaseException | None]:
    # Payloads passed the handler's checks (payloads.py): no need to re-check them as JSON here.
    results = await websocket_sender.asend_many(
        [(groups, payload) for groups, payload, _ in pushes],
        check_json=False,
        ids=[push_id for _, _, push_id in pushes],
    )
    return [_push_result(error) for error in results]


def _push_batcher() -> Batcher[Push, BaseException | None]:
    loop = asyncio.get_running_loop()
    batcher = _push_batchers.get(loop)
    if batcher is None:
        # Pushes that arrive while one batch is being sent go out together in the next: under load, one
        # channel-layer message per group carries hundreds of events; alone, a push waits the linger.
        batcher = Batcher(
            _flush_pushes,
            max_batch=1000,
            name="websocket-pushes",
            linger=PUSH_LINGER_SECONDS,
            linger_below=PUSH_LINGER_BELOW,
        )
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
    await push_event(device_groups(message.owner_id), payload)


def device_groups(owner_id: int | None) -> list[str]:
    """The groups that see a device's events: staff, and its owner's."""
    groups = [STAFF_GROUP]
    if owner_id is not None:
        groups.append(user_group(owner_id))
    return groups


async def push_event(groups: list[str], payload: dict[str, Any]) -> None:
    """Push any live event (such as `device.presence`) through the same batches as device messages;
    PushFailedError when it could not be sent."""
    await _push_batcher().submit((groups, payload, f"{_PUSH_ID_PREFIX}.{next(_push_numbers)}"))


async def store_latest_status(message: DeviceMessage) -> None:
    await get_store().record_status(StatusRow(message.device_id, message.payload, message.received_at))


async def store_history(message: DeviceMessage) -> None:
    await get_store().record_event(
        EventRow(message.device_id, message.kind, message.payload, message.received_at)
    )


async def keep_latest_status(message: DeviceMessage) -> None:
    """Built-in handler of `status`: the device's latest state, then the live push."""
    await store_latest_status(message)
    await push_to_websocket(message)


async def keep_history(message: DeviceMessage) -> None:
    """Built-in handler of every other kind: a history row, then the live push."""
    await store_history(message)
    await push_to_websocket(message)


def default_handler(kind: str) -> Handler:
    return keep_latest_status if kind == STATUS_KIND else keep_history
