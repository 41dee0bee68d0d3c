"""Presence through the real handler service and broker: device presence messages and Last Wills, EMQX
client events (real EMQX payloads on a test event prefix: the test broker drops client publishes to $SYS),
activity after an inactivity timeout, and the `device.presence` WebSocket event."""

import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.devices.models import Device, PresenceEvent
from apps.devices.presence.inactivity import sweep_inactive_devices
from apps.mqtt_service import topology
from apps.mqtt_service.topics import TopicScheme
from mqtt_helpers import (
    WAIT,
    device_client,
    eventually,
    make_scheme,
    mqtt_address,
    running_handler,
    unique,
)

pytestmark = pytest.mark.django_db(transaction=True)

PRESENCE = topology.PRESENCE_KIND
NODE = "emqx@10.0.0.7"


def presence_scheme() -> TopicScheme:
    """A scheme of this test only (it subscribes to presence like every scheme), reading client events on a
    prefix of its own."""
    return dataclasses.replace(make_scheme(), client_event_prefix=f"test_sys_{uuid.uuid4().hex[:10]}/brokers")


@database_sync_to_async
def create_device(owner: Any = None) -> Device:
    return Device.objects.create(username=unique("dev"), owner=owner)


@database_sync_to_async
def reload(device: Device) -> Device:
    return Device.objects.get(pk=device.pk)


@database_sync_to_async
def presence_history(device: Device) -> list[tuple[bool, str, str]]:
    events = PresenceEvent.objects.filter(device=device).order_by("at", "id")
    return list(events.values_list("online", "source", "reason"))


async def until_state(device: Device, online: bool, events: int | None = None) -> Device:
    """Poll the row until it is (online, with `events` presence events recorded) or WAIT passed."""
    state: dict[str, Any] = {}

    async def check() -> bool:
        state["device"] = await reload(device)
        state["history"] = await presence_history(device)
        return state["device"].is_online == online and (events is None or len(state["history"]) == events)

    for _ in range(int(WAIT / 0.05)):
        if await check():
            break
        await asyncio.sleep(0.05)
    assert await check(), (state["device"].is_online, state["history"])
    return state["device"]


def emqx_payload(device: Device, clientid: str, event: str, at_ms: int, reason: str = "") -> bytes:
    """What EMQX 5.8 publishes on $SYS/brokers/<node>/clients/<clientid>/<event>."""
    payload: dict[str, Any] = {
        "clientid": clientid,
        "username": device.username,
        "ipaddress": "10.1.2.3",
        "proto_name": "MQTT",
        "proto_ver": 5,
        "ts": at_ms,
    }
    if event == "connected":
        payload |= {"keepalive": 60, "clean_start": True, "expiry_interval": 0, "connected_at": at_ms}
    else:
        payload |= {"reason": reason, "disconnected_at": at_ms}
    return json.dumps(payload).encode()


def now_ms(offset: float = 0.0) -> int:
    return round((timezone.now().timestamp() + offset) * 1000)


async def publish_event(client: Any, scheme: TopicScheme, clientid: str, event: str, payload: bytes) -> None:
    await client.publish(f"{scheme.client_event_prefix}/{NODE}/clients/{clientid}/{event}", payload, qos=1)


async def device_event(
    client: Any, scheme: TopicScheme, device: Device, clientid: str, event: str, at_ms: int, reason: str = ""
) -> None:
    """EMQX's client event about one of our devices."""
    await publish_event(client, scheme, clientid, event, emqx_payload(device, clientid, event, at_ms, reason))


async def test_presence_messages_of_the_device_protocol_update_the_device(
    open_socket: Any, make_user: Any
) -> None:
    owner = await database_sync_to_async(make_user)()
    device = await create_device(owner)
    socket, connected, _ = await open_socket(user=owner)
    assert connected
    scheme = presence_scheme()
    topic = scheme.device_topic(device.username, PRESENCE)
    async with running_handler(scheme) as service, device_client() as dev:
        await dev.publish(topic, json.dumps({"online": True, "conn": "c1"}).encode(), qos=1)
        stored = await until_state(device, online=True, events=1)
        assert stored.connection_id == "c1" and stored.last_connected_at is not None
        frame = await socket.receive_json_from(timeout=10)
        assert frame == {
            "type": "device.presence",
            "device": device.username,
            "online": True,
            "at": stored.last_connected_at.isoformat(),
            "reason": "device_online",
            "source": "device",
            "last_seen_at": frame["last_seen_at"],
        }
        # Malformed: counted under its reason, and the service carries on.
        for bad in (b'{"online": "yes"}', b"[true]", b'{"online": true, "conn": 7}'):
            await dev.publish(topic, bad, qos=1)
        await dev.publish(topic, json.dumps({"online": False, "conn": "c1"}).encode(), qos=1)
        stored = await until_state(device, online=False, events=2)
        assert service.metrics.get("failed", reason="bad_presence") == 2
        assert service.metrics.get("failed", reason="not_object") == 1
        frame = await socket.receive_json_from(timeout=10)
        assert (frame["online"], frame["source"], frame["reason"]) == (False, "device", "device_offline")
    assert stored.last_disconnect_reason == "device_offline"


async def test_the_will_of_an_older_connection_arriving_late_is_ignored() -> None:
    """The device reconnected (token c2) before the Last Will of its old connection (c1) was delivered."""
    device = await create_device()
    scheme = presence_scheme()
    topic = scheme.device_topic(device.username, PRESENCE)
    async with running_handler(scheme), device_client() as dev:
        await dev.publish(topic, json.dumps({"online": True, "conn": "c1"}).encode(), qos=1)
        await until_state(device, online=True, events=1)
        await dev.publish(topic, json.dumps({"online": True, "conn": "c2"}).encode(), qos=1)
        await dev.publish(topic, json.dumps({"online": False, "conn": "c1"}).encode(), qos=1)  # the late will
        await dev.publish(topic, json.dumps({"online": True, "conn": "c2"}).encode(), qos=1)  # a duplicate
        # A marker message after them: once it is applied, the ones before it were handled too.
        await dev.publish(topic, json.dumps({"online": False, "conn": "c2"}).encode(), qos=1)
        stored = await until_state(device, online=False, events=2)
    assert stored.connection_id == "c2"
    assert await presence_history(device) == [
        (True, "device", "device_online"),
        (False, "device", "device_offline"),
    ]


KILLED_DEVICE = """
import asyncio, json, sys
import aiomqtt

async def main(host, port, client_id, topic):
    will = aiomqtt.Will(topic, json.dumps({"online": False, "conn": "killed-1"}).encode(), qos=1)
    async with aiomqtt.Client(host, int(port), identifier=client_id, will=will, keepalive=60,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(topic, json.dumps({"online": True, "conn": "killed-1"}).encode(), qos=1)
        print("ready", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


@contextlib.asynccontextmanager
async def device_process(topic: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real device client in its own process (connected, online announced); killed if still running."""
    host, port = mqtt_address()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_DEVICE,
        host,
        str(port),
        unique("test-device"),
        topic,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(process.stdout.readline(), WAIT)
        assert line.strip() == b"ready"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_device_killed_without_disconnect_goes_offline_through_its_last_will() -> None:
    device = await create_device()
    scheme = presence_scheme()
    async with running_handler(scheme):
        async with device_process(scheme.device_topic(device.username, PRESENCE)) as process:
            stored = await until_state(device, online=True, events=1)
            assert stored.connection_id == "killed-1"
            process.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
            await process.wait()
            stored = await until_state(device, online=False, events=2)
    assert stored.last_disconnect_reason == "device_offline"
    assert (await presence_history(device))[-1] == (False, "device", "device_offline")


async def test_emqx_client_events_on_the_configured_prefix(make_user: Any) -> None:
    """Real EMQX payloads, published where the handler reads client events: in order, duplicated, late, and a
    reconnect whose `takenover` disconnect of the old connection arrives after the new connect."""
    device = await create_device()
    scheme = presence_scheme()
    clientid = device.username
    t = now_ms(-60)
    async with running_handler(scheme) as service, device_client() as broker:
        await device_event(broker, scheme, device, clientid, "connected", t)
        await until_state(device, online=True, events=1)
        # The new connection's connect comes first, then the old one's takenover disconnect, then a duplicate.
        await device_event(broker, scheme, device, clientid, "connected", t + 5000)
        await device_event(broker, scheme, device, clientid, "disconnected", t + 5001, reason="takenover")
        await device_event(broker, scheme, device, clientid, "connected", t + 5000)
        # Late: the disconnect of the first connection, timed before the reconnect.
        await device_event(
            broker, scheme, device, clientid, "disconnected", t + 4000, reason="keepalive_timeout"
        )
        # Not devices: the backend's own clients and unknown usernames; and a malformed event.
        stranger = Device(username=unique("nobody"))
        await publish_event(
            broker, scheme, "svc", "connected", emqx_payload(stranger, "svc", "connected", t + 6000)
        )
        await publish_event(
            broker, scheme, clientid, "connected", b'{"username": "x", "connected_at": "soon"}'
        )
        # The marker: a real disconnect of the current connection.
        await device_event(broker, scheme, device, clientid, "disconnected", t + 9000, reason="sock_closed")
        stored = await until_state(device, online=False, events=2)
        assert await eventually(lambda: service.metrics.get("failed", reason="bad_client_event") == 1)
        assert service.metrics.get("processed") == 7
    assert stored.last_connected_at.timestamp() * 1000 == t + 5000
    assert stored.last_disconnected_at.timestamp() * 1000 == t + 9000
    assert stored.last_disconnect_reason == "sock_closed"
    assert await presence_history(device) == [(True, "broker", "connected"), (False, "broker", "sock_closed")]


@database_sync_to_async
def silent_online_device(owner: Any) -> Device:
    """A device online since ten minutes ago and silent since: past the default timeout."""
    long_ago = timezone.now() - timedelta(minutes=10)
    return Device.objects.create(
        username=unique("dev"), owner=owner, is_online=True, last_connected_at=long_ago, last_seen_at=long_ago
    )


async def test_a_message_brings_a_device_swept_for_inactivity_back_online(
    make_user: Any, settings: Any
) -> None:
    settings.DEVICE_INACTIVITY_TIMEOUT = 300
    owner = await database_sync_to_async(make_user)()
    device = await silent_online_device(owner)
    scheme = presence_scheme()
    async with running_handler(scheme), device_client() as dev:
        assert await database_sync_to_async(sweep_inactive_devices)() >= 1
        stored = await until_state(device, online=False, events=1)
        assert stored.last_disconnect_reason == "inactivity"
        await dev.publish(
            scheme.device_topic(device.username, scheme.kinds[0]), b'{"temperature": 21}', qos=1
        )
        stored = await until_state(device, online=True, events=2)
    assert stored.last_seen_at > stored.last_disconnected_at
    assert stored.last_connected_at == stored.last_seen_at
    assert await presence_history(device) == [
        (False, "inactivity", "inactivity"),
        (True, "activity", "activity"),
    ]
