"""Retiring a handler replica (`run_mqtt_handler --retire`): what its persistent session still holds is
stored, and the session is removed so it takes no further share of the group's messages."""

import asyncio
import json
import time

import paho.mqtt.client as paho
import pytest
from channels.db import database_sync_to_async

from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service.handler_service import HandlerService
from mqtt_helpers import WAIT, device_client, history_scheme, mqtt_address, running_handler, unique

pytestmark = pytest.mark.django_db(transaction=True)

QUEUED = 50


@database_sync_to_async
def create_device() -> Device:
    return Device.objects.create(username=unique("dev"), name="retire test")


@database_sync_to_async
def stored_events(device: Device) -> int:
    return DeviceEvent.objects.filter(device=device).count()


def session_present(client_id: str) -> bool:
    """Whether the broker keeps a session for `client_id` (the CONNACK flag). The probe asks for no expiry,
    so it leaves no session of its own behind."""
    host, port = mqtt_address()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    flags: list[bool] = []
    client.on_connect = lambda _c, _u, connect_flags, _rc, _p: flags.append(connect_flags.session_present)
    client.connect(host, port, clean_start=False)
    client.loop_start()
    try:
        deadline = time.monotonic() + WAIT
        while not flags and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    assert flags, "no CONNACK"
    return flags[0]


async def test_retiring_stores_what_the_session_held_then_removes_it() -> None:
    device = await create_device()
    scheme, kind = history_scheme()
    # QoS 1 whatever was answered: at QoS 0 the broker keeps nothing for an absent session, so there is
    # nothing to drain (retiring then only removes the session).
    async with running_handler(scheme, qos=1) as service:
        client_id = service.client_id
    # The replica is gone but its session lives on: the broker queues the group's messages for it.
    async with device_client() as dev:
        for n in range(QUEUED):
            topic = scheme.device_topic(device.username, kind)
            await dev.publish(topic, json.dumps({"n": n}).encode(), qos=1)
    assert await stored_events(device) == 0

    retiring = HandlerService(
        client_id=client_id, scheme=scheme, qos=1, session_expiry=60, retire_after_idle=0.5
    )
    await asyncio.wait_for(retiring.run(), WAIT)

    assert await stored_events(device) == QUEUED
    assert retiring.metrics.get("processed") == QUEUED
    assert not await asyncio.to_thread(session_present, client_id)
