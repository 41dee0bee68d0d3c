"""Presence changes read from what arrives over MQTT: a device's presence message (or its Last Will) and
EMQX's client events. A payload that does not say what it must is refused with PayloadRefusedError, which
the handler service counts under its reason and logs; it never reaches the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.devices.presence.apply import PresenceChange, Source
from apps.mqtt_service.payloads import PayloadRefusedError
from apps.mqtt_service.router import ClientEvent

BAD_PRESENCE = "bad_presence"
BAD_CLIENT_EVENT = "bad_client_event"

# The device model's connection_id holds at most this many characters.
MAX_CONN_LENGTH = 64
MAX_REASON_LENGTH = 64
# A broker timestamp further ahead of this host's clock is refused: once stored it would hide every real
# event until that time. Clocks synchronised by NTP are well within it.
MAX_CLOCK_AHEAD = timedelta(minutes=5)

DEVICE_ONLINE_REASON = "device_online"
DEVICE_OFFLINE_REASON = "device_offline"
BROKER_ONLINE_REASON = "connected"
# EMQX disconnect reasons of a connection that a newer connection with the same client id replaced: the device
# is still connected, through the newer one.
SUPERSEDED_REASONS = frozenset({"takenover", "discarded"})


def change_from_presence_message(payload: dict[str, Any], received_at: datetime) -> PresenceChange:
    """`{"online": bool, "conn": str?}` -> the change, timed by its arrival (a device's clock is not
    trusted; the handler sees one device's messages in order)."""
    online = payload.get("online")
    if type(online) is not bool:
        raise PayloadRefusedError(BAD_PRESENCE, '"online" must be true or false')
    conn = payload.get("conn")
    if conn is not None and (type(conn) is not str or not 0 < len(conn) <= MAX_CONN_LENGTH):
        raise PayloadRefusedError(
            BAD_PRESENCE, f'"conn" must be a string of 1 to {MAX_CONN_LENGTH} characters'
        )
    reason = DEVICE_ONLINE_REASON if online else DEVICE_OFFLINE_REASON
    return PresenceChange(online=online, at=received_at, source=Source.DEVICE, reason=reason, conn=conn)


@dataclass(frozen=True)
class BrokerPresence:
    """What an EMQX client event says: whose (username) and the change, or `superseded` for a disconnect of
    a connection a newer one replaced."""

    username: str | None
    change: PresenceChange
    superseded: bool


def change_from_client_event(event: ClientEvent) -> BrokerPresence:
    """EMQX's `connected` / `disconnected` payload (times in ms since the epoch) -> the change."""
    payload = event.payload
    online = event.event == "connected"
    time_field = "connected_at" if online else "disconnected_at"
    at = _event_time(payload.get(time_field, payload.get("ts")), time_field, event.received_at)
    username = payload.get("username")
    # EMQX writes "undefined" (or null) for a client without a username: not a device.
    if username is not None and type(username) is not str:
        raise PayloadRefusedError(BAD_CLIENT_EVENT, '"username" must be a string')
    if online:
        reason = BROKER_ONLINE_REASON
    else:
        reason = payload.get("reason", "")
        if type(reason) is not str:
            # EMQX renders a structured reason as text; anything else is not its payload.
            raise PayloadRefusedError(BAD_CLIENT_EVENT, '"reason" must be a string')
        reason = reason[:MAX_REASON_LENGTH]
    change = PresenceChange(online=online, at=at, source=Source.BROKER, reason=reason)
    return BrokerPresence(username or None, change, superseded=not online and reason in SUPERSEDED_REASONS)


def _event_time(value: Any, field: str, received_at: datetime) -> datetime:
    if type(value) is not int or value < 0:
        raise PayloadRefusedError(BAD_CLIENT_EVENT, f'"{field}" must be milliseconds since the epoch')
    try:
        at = datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadRefusedError(BAD_CLIENT_EVENT, f'"{field}" is out of range') from None
    if at > received_at + MAX_CLOCK_AHEAD:
        raise PayloadRefusedError(
            BAD_CLIENT_EVENT, f'"{field}" is {at - received_at} ahead of this host\'s clock: check NTP'
        )
    return at
