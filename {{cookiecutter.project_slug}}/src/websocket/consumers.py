"""The browser's live-event socket: server push only, for signed-in users."""

import json
import logging
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from websocket.groups import STAFF_GROUP, safe_group_name, user_group

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
# How many recent message ids a socket remembers to drop a copy that reached it through a second group.
# A batch (ws.push_batch) holds up to 500 events and its copy for the second group follows it, so this must
# be larger than two batches.
RECENT_IDS = 2048


class DeviceEventsConsumer(AsyncJsonWebsocketConsumer):
    """Joins the user's own group (and the staff group for staff); forwards `ws.push` messages as JSON.

    Group membership is decided here, from the session, never by the client: a client asking to subscribe
    to a group gets an error, so no one can listen to another user's devices.
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Refuse the handshake: anonymous clients get nothing.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Insertion-ordered dict used as a bounded set: O(1) lookups, oldest evicted first.
        self.recent_ids: dict[str, None] = {}
        self.joined_groups = [user_group(user.pk)]
        if user.is_staff or user.is_superuser:
            self.joined_groups.append(STAFF_GROUP)
        for group in self.joined_groups:
            await self.channel_layer.group_add(safe_group_name(group), self.channel_name)
        await self.accept()
        logger.debug("WebSocket opened for user %s, groups %s", user.pk, self.joined_groups)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined_groups", []):
            await self.channel_layer.group_discard(safe_group_name(group), self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is None:
            await self._send_error("unsupported", "Binary frames are not accepted.")
            return
        try:
            content = json.loads(text_data)
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
