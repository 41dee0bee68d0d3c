"""Device messages go device -> real broker -> handler service -> database rows and WebSocket groups.

The handler runs in-process as an asyncio task, with topic prefixes and a shared group of each test only.
"""

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service.topics import TopicScheme
from mqtt_helpers import device_client, eventually, make_scheme, running_handler, unique
from websocket.groups import STAFF_GROUP, user_group

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def create_device(owner: Any = None, is_active: bool = True) -> Device:
    return Device.objects.create(username=unique("dev"), name="test device", owner=owner, is_active=is_active)


@database_sync_to_async
def event_payloads(device: Device) -> list[dict[str, Any]]:
    return list(DeviceEvent.objects.filter(device=device).order_by("id").values_list("payload", flat=True))


@database_sync_to_async
def reload(device: Device) -> Device:
    return Device.objects.get(pk=device.pk)


async def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def pushes_for(channel: str, username: str, count: int) -> list[dict[str, Any]]:
    """The next `count` pushes about `username` on `channel` (other tests' pushes to staff are skipped).

    The handler sends its pushes in `ws.push_batch` messages; each event in one is a push of its own."""
    layer = get_channel_layer()
    found: list[dict[str, Any]] = []

    async def collect() -> None:
        while len(found) < count:
            message = await layer.receive(channel)
            assert message["type"] == "ws.push_batch"
            found.extend(event for event in message["events"] if event["payload"].get("device") == username)

    await asyncio.wait_for(collect(), 10)
    return found


async def test_status_and_event_are_stored_and_pushed_to_owner_and_staff(make_user: Any) -> None:
    owner = await database_sync_to_async(make_user)()
    device = await create_device(owner)
    scheme = make_scheme()
    owner_channel = await listen(user_group(owner.pk))
    staff_channel = await listen(STAFF_GROUP)
    async with running_handler(scheme) as service, device_client() as dev:
        await dev.publish(scheme.device_topic(device.username, "status"), b'{"battery": 81}', qos=1)
        await dev.publish(scheme.device_topic(device.username, "event"), b'{"door": "open"}', qos=1)
        owner_pushes = await pushes_for(owner_channel, device.username, 2)
        staff_pushes = await pushes_for(staff_channel, device.username, 2)
        assert service.metrics.get("processed") == 2
    by_type = {push["payload"]["type"]: push for push in owner_pushes}
    assert set(by_type) == {"device.status", "device.event"}
    # One id per device message: the consumer drops the copy that reaches a staff owner through both groups.
    assert {push["id"] for push in owner_pushes} == {push["id"] for push in staff_pushes}
    assert by_type["device.status"]["payload"]["data"] == {"battery": 81}
    assert by_type["device.event"]["payload"]["data"] == {"door": "open"}
    assert "T" in by_type["device.event"]["payload"]["received_at"]
    assert sorted(p["payload"]["type"] for p in staff_pushes) == ["device.event", "device.status"]
    stored = await reload(device)
    assert stored.last_status == {"battery": 81}
    assert stored.last_seen_at is not None
    assert await event_payloads(device) == [{"door": "open"}]


async def test_malformed_messages_are_counted_and_skipped_and_valid_ones_still_processed() -> None:
    device = await create_device()
    inactive = await create_device(is_active=False)
    scheme = make_scheme(kinds=("status", "event", "telemetry"))  # telemetry has no handler
    bad = [
        (scheme.device_topic(device.username, "event"), b"{not json", "not_json"),
        (scheme.device_topic(device.username, "event"), b'{"v": NaN}', "not_json"),
        (scheme.device_topic(device.username, "status"), b'{"v": -Infinity}', "not_json"),
        (scheme.device_topic(device.username, "event"), b"[1, 2, 3]", "not_object"),
        (scheme.device_topic(device.username, "event"), b"\xff\xfe\x00", "not_utf8"),
        (scheme.device_topic(device.username, "event"), b'{"x": "' + b"a" * 70_000 + b'"}', "too_large"),
        (scheme.device_topic(device.username, "telemetry"), b'{"t": 1}', "unknown_kind"),
        (scheme.device_topic(unique("ghost"), "event"), b'{"x": 1}', "unknown_device"),
        (scheme.device_topic(inactive.username, "event"), b'{"x": 1}', "inactive_device"),
    ]
    async with running_handler(scheme) as service, device_client() as dev:
        for topic, payload, _ in bad:
            await dev.publish(topic, payload, qos=1)
        await dev.publish(scheme.device_topic(device.username, "event"), b'{"ok": true}', qos=1)
        assert await eventually(lambda: service.metrics.get("processed") == 1, within=10)
        assert await eventually(
            lambda: sum(service.metrics.get("failed", r) for r in {r for _, _, r in bad}) == len(bad),
            within=10,
        )
        for reason, count in Counter(reason for _, _, reason in bad).items():
            assert service.metrics.get("failed", reason) == count, reason
        assert service.metrics.get("received") == len(bad) + 1
    assert await event_payloads(device) == [{"ok": True}]
    assert await event_payloads(inactive) == []


async def test_a_burst_is_stored_completely_in_batches() -> None:
    devices = [await create_device() for _ in range(5)]
    scheme: TopicScheme = make_scheme()
    per_device = 100
    async with running_handler(scheme) as service, device_client() as dev:
        await asyncio.gather(
            *(
                dev.publish(scheme.device_topic(d.username, "event"), json.dumps({"seq": i}).encode(), qos=1)
                for i in range(per_device)
                for d in devices
            )
        )
        await dev.publish(scheme.device_topic(devices[0].username, "status"), b'{"final": true}', qos=1)
        total = per_device * len(devices) + 1
        assert await eventually(lambda: service.metrics.get("processed") == total, within=20)
        assert service.metrics.get("ws_push_failed") == 0
    for d in devices:
        payloads = await event_payloads(d)
        assert sorted(p["seq"] for p in payloads) == list(range(per_device))
    assert (await reload(devices[0])).last_status == {"final": True}
