"""The browser's live-event socket: server push only, for signed-in users."""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from websocket.groups import STAFF_GROUP, safe_group_name, user_group

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
# RFC 6455 codes: the server could not join the socket's groups (the client may retry later), and the server
# failed on a frame.
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_INTERNAL_ERROR = 1011
# Clients only ever send {"action": "ping"}: a frame beyond this is refused unread.
MAX_FRAME_CHARS = 4096
# How many recent message ids a socket remembers to drop a copy that reached it through a second group.
# A batch (ws.push_batch) holds up to 500 events and its copy for the second group follows it, so this must
# be larger than two batches.
RECENT_IDS = 2048
# Joining or leaving a group is retried this many times, with these pauses in between (seconds): a burst of
# handshakes or a Redis restart fails a few calls, not the socket.
GROUP_CALL_ATTEMPTS = 4
GROUP_RETRY_DELAYS = (0.2, 0.5, 1.0)
_LAYER_ERRORS = (redis.RedisError, OSError)  # OSError covers the builtin TimeoutError
# Channel-layer message types the server pushes, and their handlers.
_PUSH_HANDLERS = {"ws.push": "ws_push", "ws.push_batch": "ws_push_batch"}


class DeviceEventsConsumer(AsyncJsonWebsocketConsumer):
    """Joins the user's own group (and the staff group for staff); forwards `ws.push` messages as JSON.

    Group membership is decided here, from the session, never by the client: a client asking to subscribe
    to a group gets an error, so no one can listen to another user's devices. Membership is removed on every
    way out (close by either side, a failed frame, a cancelled task): a stale member would keep receiving
    copies of its groups' messages into a channel nobody reads until the group expires.
    """

    joined_groups: list[str]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.joined_groups = []
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.joined_groups:
                # Shielded: a server shutting down cancels this task, and the leave must still reach Redis.
                await asyncio.shield(self._leave_groups())

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Refuse the handshake: anonymous clients get nothing.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Insertion-ordered dict used as a bounded set: O(1) lookups, oldest evicted first.
        self.recent_ids: dict[str, None] = {}
        groups = [user_group(user.pk)]
        if user.is_staff or user.is_superuser:
            groups.append(STAFF_GROUP)
        if not await self._join_groups([safe_group_name(group) for group in groups]):
            # Accepted then closed, so the browser sees why (a refused handshake only shows code 1006).
            await self.accept()
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        await self.accept()
        logger.debug("WebSocket opened for user %s, groups %s", user.pk, self.joined_groups)

    async def disconnect(self, code: int) -> None:
        await self._leave_groups()

    async def _join_groups(self, groups: list[str]) -> bool:
        for group in groups:
            if not await _with_retries(self.channel_layer.group_add, group, self.channel_name):
                logger.warning("WebSocket refused: could not join group %s; the client may retry", group)
                self.joined_groups.append(group)  # a failed add may still have reached Redis: leave it too
                await self._leave_groups()
                return False
            self.joined_groups.append(group)
        return True

    async def _leave_groups(self) -> None:
        while self.joined_groups:
            group = self.joined_groups.pop()
            if not await _with_retries(self.channel_layer.group_discard, group, self.channel_name):
                logger.error(
                    "could not remove channel %s from group %s; it expires with the group",
                    self.channel_name,
                    group,
                )

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            push = _PUSH_HANDLERS.get(message.get("type"))
            if push is not None:
                # Pushes never touch the database, so they skip channels' close_old_connections before
                # each message: a trip to a worker thread that cost uvicorn more CPU than the delivery.
                await getattr(self, push)(message)
            else:
                await super().dispatch(message)
        except OSError as exc:
            # The client went away while something was sent to it (uvicorn raises ClientDisconnected, an
            # OSError): an everyday event. The server's websocket.disconnect follows and ends the consumer.
            logger.debug("WebSocket client gone while sending to it: %r", exc)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """Every frame gets an answer; one that makes this code fail closes the socket cleanly instead of
        ending the consumer with an exception."""
        try:
            await super().websocket_receive(message)
        except OSError:
            raise  # the client is gone: see dispatch
        except Exception:
            logger.exception("WebSocket frame handling failed; closing the socket")
            await self.close(code=CLOSE_INTERNAL_ERROR)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is None:
            await self._send_error("unsupported", "Binary frames are not accepted.")
            return
        if len(text_data) > MAX_FRAME_CHARS:
            await self._send_error("too_large", f"Frames are limited to {MAX_FRAME_CHARS} characters.")
            return
        try:
            content = json.loads(text_data)
        except RecursionError:
            await self._send_error("too_deep", "The JSON is nested too deeply.")
            return
        except ValueError:
            await self._send_error("invalid_json", "Messages must be JSON objects.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        if action == "ping":
            await self.send_json({"type": "pong"})
        elif action == "subscribe":
            await self._send_error(
                "subscribe_refused",
                "Subscriptions are decided by the server: you receive the events of your own devices.",
            )
        else:
            await self._send_error(
                "unsupported", 'This socket only pushes events; only {"action": "ping"} is answered.'
            )

    async def ws_push(self, event: dict[str, Any]) -> None:
        """Handler of channel-layer messages {"type": "ws.push", "payload": ..., "id": ...}."""
        await self._deliver(event)

    async def ws_push_batch(self, message: dict[str, Any]) -> None:
        """Handler of {"type": "ws.push_batch", "events": [{"payload", "id"}, ...]}: one frame per event."""
        for event in message["events"]:
            await self._deliver(event)

    async def _deliver(self, event: dict[str, Any]) -> None:
        message_id = event.get("id")
        if message_id is not None:
            if message_id in self.recent_ids:
                return
            self.recent_ids[message_id] = None
            if len(self.recent_ids) > RECENT_IDS:
                del self.recent_ids[next(iter(self.recent_ids))]
        try:
            text = await self.encode_json(event["payload"])
        except (TypeError, ValueError) as exc:
            # Only a push sent without the up-front check can get here (e.g. NaN, which json.loads accepts):
            # drop that one event rather than send the browser text its JSON.parse rejects.
            logger.warning("dropped a WebSocket event that is not strict JSON: %s", exc)
            return
        await self.send(text_data=text)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content, allow_nan=False)

    async def _send_error(self, error: str, detail: str) -> None:
        await self.send_json({"type": "error", "error": error, "detail": detail})


async def _with_retries(call: Callable[[str, str], Awaitable[None]], group: str, channel: str) -> bool:
    """Run a group_add/group_discard, retrying on Redis errors; False when every attempt failed."""
    for attempt in range(GROUP_CALL_ATTEMPTS):
        try:
            await call(group, channel)
            return True
        except _LAYER_ERRORS as exc:
            if attempt == GROUP_CALL_ATTEMPTS - 1:
                logger.warning("channel layer call for group %s failed: %r", group, exc)
                return False
            await asyncio.sleep(GROUP_RETRY_DELAYS[min(attempt, len(GROUP_RETRY_DELAYS) - 1)])
    return False
