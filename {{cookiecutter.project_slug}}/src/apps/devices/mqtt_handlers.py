"""MQTT handlers of the devices app: presence from the device protocol and from the broker's client events,
and activity (any message shows the device is alive). Loaded by the handler service at start."""

from __future__ import annotations

from apps.devices.presence.activity import get_recorder
from apps.devices.presence.apply import AppliedChange, aapply_change
from apps.devices.presence.events import change_from_client_event, change_from_presence_message
from apps.devices.presence.push import presence_groups, presence_payload
from apps.mqtt_service import topology
from apps.mqtt_service.device_store import get_store
from apps.mqtt_service.handlers import push_event
from apps.mqtt_service.router import (
    ClientEvent,
    DeviceMessage,
    client_event_handler,
    message_handler,
    message_observer,
)


async def _push(applied: AppliedChange | None) -> None:
    if applied is not None and applied.flipped:
        await push_event(presence_groups(applied), presence_payload(applied))


@message_handler(topology.PRESENCE_KIND)
async def handle_presence(message: DeviceMessage) -> None:
    """`{"online": bool, "conn": str?}` from the device, or its Last Will."""
    change = change_from_presence_message(message.payload, message.received_at)
    await _push(await aapply_change(message.device_id, change))


@client_event_handler
async def handle_client_event(event: ClientEvent) -> None:
    """EMQX's connected/disconnected event of a client; clients that are not active devices (the backend's
    own services, unknown usernames) are left alone."""
    broker = change_from_client_event(event)
    if broker.superseded or broker.username is None:
        return
    device = await get_store().lookup(broker.username)
    if device is None or not device.is_active:
        return
    await _push(await aapply_change(device.id, broker.change))


@message_observer
async def note_activity(message: DeviceMessage) -> None:
    """Any message but an offline announcement or a Last Will (sent by the broker) shows the device alive."""
    if message.kind == topology.PRESENCE_KIND and message.payload.get("online") is not True:
        return
    await _push(await get_recorder().saw(message.device_id, message.received_at))
