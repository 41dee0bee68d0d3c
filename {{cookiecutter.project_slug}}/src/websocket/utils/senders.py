"""Send JSON to users' WebSockets from views, tasks, handlers or shells.

    from websocket.utils.senders import websocket_sender
    websocket_sender.send_to_user(user_id=1, payload={"type": "device.event", "data": {"ok": True}})

Also send_to_groups(groups, payload): one message to several groups, delivered once per socket.
The sync methods are for sync code (views, Celery tasks); in async code await the `a`-prefixed twins.
High-volume senders (the MQTT handler) use asend_many: many payloads, one channel-layer message per group.
"""

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from websocket.groups import safe_group_name, user_group

logger = logging.getLogger(__name__)

PUSH_MESSAGE_TYPE = "ws.push"
# Several pushes in one channel-layer message: {"type": "ws.push_batch", "events": [{"payload", "id"}, ...]};
# the consumer sends each event as its own WebSocket frame, exactly as a `ws.push` would have been sent.
PUSH_BATCH_MESSAGE_TYPE = "ws.push_batch"
# Events per channel-layer message: bounds the Redis message size (channels_redis refuses > 512 MB, but
# large messages also stall the consumer's other work while it unpacks them).
MAX_EVENTS_PER_MESSAGE = 500
# group_send calls in flight at once: the layer's Redis pool refuses callers beyond its size (100 by default).
MAX_CONCURRENT_GROUP_SENDS = 20


def _check_json(payload: Any) -> None:
    """Fail early (here, not in the browser) when the payload is not strict JSON."""
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"WebSocket payload must be JSON-serialisable: {exc}") from exc


def _push_message(payload: Any) -> dict[str, Any]:
    """Wrap the payload for the consumer. The id lets a socket that is in several of the target groups
    (a staff user who also owns the device) deliver the message once."""
    _check_json(payload)
    return {"type": PUSH_MESSAGE_TYPE, "payload": payload, "id": uuid.uuid4().hex}


def _chunks(events: list[Any]) -> list[list[Any]]:
    return [
        events[start : start + MAX_EVENTS_PER_MESSAGE]
        for start in range(0, len(events), MAX_EVENTS_PER_MESSAGE)
    ]


class WebsocketSender:
    def _layer(self) -> BaseChannelLayer:
        layer = get_channel_layer()
        if layer is None:
            raise ImproperlyConfigured("CHANNEL_LAYERS is not configured: WebSocket messages cannot be sent.")
        return layer

    async def asend_to_group(self, group: str, payload: Any) -> None:
        await self._layer().group_send(safe_group_name(group), _push_message(payload))

    async def asend_to_groups(self, groups: Iterable[str], payload: Any) -> None:
        """One message to several groups; a socket in more than one of them receives it once."""
        message = _push_message(payload)
        layer = self._layer()
        for group in dict.fromkeys(safe_group_name(group) for group in groups):
            await layer.group_send(group, message)

    async def asend_many(
        self,
        pushes: Sequence[tuple[Iterable[str], Any]],
        *,
        check_json: bool = True,
        ids: Sequence[str] | None = None,
    ) -> list[BaseException | None]:
        """Send each (groups, payload) push; per group, all its payloads travel in one channel-layer message.

        Each push has one id, so a socket in several of its groups gets it once; each arrives as its own
        frame, in order. Returns one result per push: None, or the error of a group it could not reach.
        Why: one group_send per payload and group costs a Redis round trip each and makes the consumer pop
        each one separately; at thousands of device messages per second that, not the database, was the limit.
        check_json=False skips the up-front JSON check for payloads known to be JSON (built from json.loads
        output): it cost as much as the sending itself. The consumer still encodes strictly and drops, with a
        log line, an event that is not (such as NaN, which json.loads accepts).
        ids: one id per push, for a caller that may send a push again (a socket then drops the copy);
        by default each call makes its own.
        """
        results: list[BaseException | None] = [None] * len(pushes)
        # Ids are "<one random id per call>.<push index>": a uuid4 per push cost more than sending it.
        batch_id = uuid.uuid4().hex
        per_group: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        # The handler repeats the same few group lists: clean and de-duplicate each distinct list once.
        resolved: dict[tuple[str, ...], list[list[tuple[int, dict[str, Any]]]]] = {}
        for index, (groups, payload) in enumerate(pushes):
            if check_json:
                try:
                    _check_json(payload)
                except TypeError as exc:
                    results[index] = exc
                    continue
            key = tuple(groups)
            targets = resolved.get(key)
            if targets is None:
                names = dict.fromkeys(safe_group_name(group) for group in key)
                targets = resolved[key] = [per_group.setdefault(name, []) for name in names]
            entry = (index, {"payload": payload, "id": ids[index] if ids else f"{batch_id}.{index}"})
            for events in targets:
                events.append(entry)
        layer = self._layer()
        messages = [
            (group, {"type": PUSH_BATCH_MESSAGE_TYPE, "events": [event for _, event in chunk]}, chunk)
            for group, events in per_group.items()
            for chunk in _chunks(events)
        ]
        send_many = getattr(layer, "group_send_many", None)
        if send_many is not None:
            # The project's layer: every group in two Redis round trips (websocket.channel_layer).
            try:
                await send_many([(group, message) for group, message, _ in messages])
            except Exception as exc:  # a dead channel layer: every push of the call failed alike
                logger.debug("group_send_many failed", exc_info=True)
                return [result or exc for result in results]
            return results
        limit = asyncio.Semaphore(MAX_CONCURRENT_GROUP_SENDS)

        async def send(group: str, message: dict[str, Any], chunk: list[tuple[int, dict[str, Any]]]) -> None:
            try:
                async with limit:
                    await layer.group_send(group, message)
            except Exception as exc:  # a dead channel layer: report it against every push it carried
                logger.debug("group_send to %s failed", group, exc_info=True)
                for index, _ in chunk:
                    results[index] = results[index] or exc

        # Chunks of one group go one after the other, so its events arrive in order.
        by_group: dict[str, list[tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]]] = {}
        for group, message, chunk in messages:
            by_group.setdefault(group, []).append((message, chunk))

        async def send_in_order(group: str) -> None:
            for message, chunk in by_group[group]:
                await send(group, message, chunk)

        await asyncio.gather(*(send_in_order(group) for group in by_group))
        return results

    async def asend_to_user(self, user_id: int | str, payload: Any) -> None:
        await self.asend_to_group(user_group(user_id), payload)

    async def asend_to_users(self, user_ids: Iterable[int | str], payload: Any) -> None:
        await self.asend_to_groups([user_group(user_id) for user_id in user_ids], payload)

    def send_to_group(self, group: str, payload: Any) -> None:
        async_to_sync(self.asend_to_group)(group, payload)

    def send_to_user(self, user_id: int | str, payload: Any) -> None:
        async_to_sync(self.asend_to_user)(user_id, payload)

    def send_to_users(self, user_ids: Iterable[int | str], payload: Any) -> None:
        async_to_sync(self.asend_to_users)(list(user_ids), payload)

    def send_to_groups(self, groups: Iterable[str], payload: Any) -> None:
        async_to_sync(self.asend_to_groups)(list(groups), payload)


websocket_sender = WebsocketSender()
