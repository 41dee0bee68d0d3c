"""`device.presence` WebSocket events, sent to the device owner's group and the staff group."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync

from apps.devices.presence.apply import AppliedChange
from websocket.groups import STAFF_GROUP, user_group
from websocket.utils.senders import websocket_sender

EVENT_TYPE = "device.presence"


def presence_payload(applied: AppliedChange) -> dict[str, Any]:
    change = applied.change
    return {
        "type": EVENT_TYPE,
        "device": applied.username,
        "online": change.online,
        "at": change.at.isoformat(),
        "reason": change.reason,
        "source": change.source,
        "last_seen_at": applied.last_seen_at.isoformat() if applied.last_seen_at else None,
    }


def presence_groups(applied: AppliedChange) -> list[str]:
    groups = [STAFF_GROUP]
    if applied.owner_id is not None:
        groups.append(user_group(applied.owner_id))
    return groups


def push_presence_many(changes: Iterable[AppliedChange]) -> list[BaseException | None]:
    """From sync code (the sweep): every change in one round of channel-layer messages; one result per change
    (None, or the error that kept it from a group)."""
    pushes = [(presence_groups(applied), presence_payload(applied)) for applied in changes]
    if not pushes:
        return []
    return async_to_sync(websocket_sender.asend_many)(pushes)
