"""Send JSON to users' WebSockets from views, tasks, handlers or shells.

    from websocket.utils.senders import websocket_sender
    websocket_sender.send_to_user(user_id=1, payload={"type": "device.event", "data": {"ok": True}})

Also send_to_groups(groups, payload): one message to several groups, delivered once per socket.
The sync methods are for sync code (views, Celery tasks); in async code await the `a`-prefixed twins.
"""

import json
import uuid
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from websocket.groups import safe_group_name, user_group

PUSH_MESSAGE_TYPE = "ws.push"


def _push_message(payload: Any) -> dict[str, Any]:
    """Wrap the payload for the consumer, failing early (here, not in the browser) when it is not JSON.

    The id lets a socket that is in several of the target groups (a staff user who also owns the device)
    deliver the message once.
    """
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"WebSocket payload must be JSON-serialisable: {exc}") from exc
    return {"type": PUSH_MESSAGE_TYPE, "payload": payload, "id": uuid.uuid4().hex}


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
