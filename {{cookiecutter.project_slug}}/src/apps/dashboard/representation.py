"""The JSON the pages start from, in the shapes of the API and of the WebSocket events (see README), so the
page's script treats its first state, a resync and a live event alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apps.devices.models import Device, DeviceEvent, PresenceEvent


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def device_json(device: Device) -> dict[str, Any]:
    """A device as GET /api/devices/<username>/ renders it."""
    latest = {
        kind: {"data": entry.get("data"), "at": entry.get("at")}
        for kind, entry in (device.latest or {}).items()
        if isinstance(entry, dict)
    }
    return {
        "username": device.username,
        "name": device.name,
        "is_online": device.is_online,
        "last_seen_at": _iso(device.last_seen_at),
        "last_connected_at": _iso(device.last_connected_at),
        "last_disconnected_at": _iso(device.last_disconnected_at),
        "last_disconnect_reason": device.last_disconnect_reason,
        "latest": latest,
        "owner": device.owner.get_username() if device.owner is not None else None,
    }


def message_json(event: DeviceEvent) -> dict[str, Any]:
    """A stored message as the history API renders it."""
    return {"kind": event.kind, "payload": event.payload, "received_at": _iso(event.received_at)}


def presence_json(event: PresenceEvent) -> dict[str, Any]:
    return {"online": event.online, "at": _iso(event.at), "reason": event.reason, "source": event.source}
