"""Device messages go device -> real broker -> handler service -> database rows and WebSocket groups.

The handler runs in-process as an asyncio task, with topic prefixes and a shared group of each test only,
and the kinds answered when the project was generated (apps/mqtt_service/topology.py).
"""

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service.handlers import STATUS_KIND
from mqtt_helpers import (
    KINDS,
    device_client,
    eventually,
    history_kinds,
    history_scheme,
    leave_stale_subscription,
    make_scheme,
    running_handler,
    unique,
)
from websocket.groups import STAFF_GROUP, user_group

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def create_device(owner: Any = None, is_active: bool = True) -> Device:
    return Device.objects.create(username=unique("dev"), name="test device", owner=owner, is_active=is_active)


@database_sync_to_async
def event_payloads(device: Device, kind: str | None = None) -> list[dict[str, Any]]:
    events = DeviceEvent.objects.filter(device=device).order_by("id")
    if kind is not None:
        events = events.filter(kind=kind)
    return list(events.values_list("payload", flat=True))


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


async def test_every_answered_kind_is_stored_and_reaches_the_owners_websocket(
    open_socket: Any, make_user: Any
) -> None:
    """Each answered kind works without writing code: status keeps the latest state, every other kind is a
    history row; each arrives on the owner's logged-in socket as `device.<kind>`, and staff get it too."""
    owner = await database_sync_to_async(make_user)()
    device = await create_device(owner)
    socket, connected, _ = await open_socket(user=owner)
    assert connected
    staff_channel = await listen(STAFF_GROUP)
    scheme = make_scheme()
    sent = {kind: {"kind_was": kind, "n": n} for n, kind in enumerate(KINDS)}
    async with running_handler(scheme) as service, device_client() as dev:
        for kind, payload in sent.items():
            await dev.publish(scheme.device_topic(device.username, kind), json.dumps(payload).encode(), qos=1)
        frames = [await socket.receive_json_from(timeout=10) for _ in KINDS]
        staff_pushes = await pushes_for(staff_channel, device.username, len(KINDS))
        # Counted once the message's observers (activity) are done too, which may be after its push.
        assert await eventually(lambda: service.metrics.get("processed") == len(KINDS))
    assert {frame["type"]: frame["data"] for frame in frames} == {f"device.{k}": p for k, p in sent.items()}
    assert all(frame["device"] == device.username and "T" in frame["received_at"] for frame in frames)
    assert sorted(push["payload"]["type"] for push in staff_pushes) == sorted(f"device.{k}" for k in KINDS)
    assert await socket.receive_nothing(timeout=0.3)  # once each
    stored = await reload(device)
    if STATUS_KIND in KINDS:
        assert stored.last_status == sent[STATUS_KIND]
        assert stored.last_seen_at is not None
    else:
        assert stored.last_status is None
    for kind in history_kinds():
        assert await event_payloads(device, kind) == [sent[kind]]
    assert len(await event_payloads(device)) == len(history_kinds())


async def test_owner_and_staff_pushes_share_one_id_per_message(make_user: Any) -> None:
    owner = await database_sync_to_async(make_user)()
    device = await create_device(owner)
    scheme = make_scheme()
    owner_channel = await listen(user_group(owner.pk))
    staff_channel = await listen(STAFF_GROUP)
    async with running_handler(scheme), device_client() as dev:
        for n, kind in enumerate(KINDS):
            await dev.publish(
                scheme.device_topic(device.username, kind), json.dumps({"n": n}).encode(), qos=1
            )
        owner_pushes = await pushes_for(owner_channel, device.username, len(KINDS))
        staff_pushes = await pushes_for(staff_channel, device.username, len(KINDS))
    # One id per device message: the consumer drops the copy that reaches a staff owner through both groups.
    assert {push["id"] for push in owner_pushes} == {push["id"] for push in staff_pushes}
    assert len({push["id"] for push in owner_pushes}) == len(KINDS)


async def test_malformed_messages_are_counted_by_reason_and_valid_ones_still_processed() -> None:
    device = await create_device()
    inactive = await create_device(is_active=False)
    scheme = make_scheme()
    kind = KINDS[0]
    topic = scheme.device_topic(device.username, kind)
    client_id = unique("test-handler")
    # A kind the session still subscribes to from an earlier configuration: not an answered kind.
    await leave_stale_subscription(scheme, "retired_kind", client_id)
    bad = [
        (topic, b"{not json", "not_json"),
        (topic, b'{"v": NaN}', "bad_number"),
        (topic, b'{"v": -Infinity}', "bad_number"),
        (topic, b'{"v": 1e999}', "bad_number"),
        (topic, b'{"v": 18446744073709551616}', "bad_number"),
        (topic, b'{"v": "a\\u0000b"}', "bad_text"),
        (topic, b'{"v": "\\ud800"}', "bad_text"),
        (topic, b"[" * 30_000 + b"]" * 30_000, "too_deep"),
        (topic, b"[1, 2, 3]", "not_object"),
        (topic, b"\xff\xfe\x00", "not_utf8"),
        (topic, b'{"x": "' + b"a" * 70_000 + b'"}', "too_large"),
        (scheme.device_topic(device.username, "retired_kind"), b'{"t": 1}', "unknown_kind"),
        (scheme.device_topic("Not A Device Name", kind), b'{"t": 1}', "bad_topic"),
        (scheme.device_topic(unique("ghost"), kind), b'{"x": 1}', "unknown_device"),
        (scheme.device_topic(inactive.username, kind), b'{"x": 1}', "inactive_device"),
    ]
    counted = [reason for _, _, reason in bad]
    async with running_handler(scheme, client_id=client_id) as service, device_client() as dev:
        for bad_topic, payload, _ in bad:
            await dev.publish(bad_topic, payload, qos=1)
        await dev.publish(topic, b'{"ok": true}', qos=1)
        assert await eventually(lambda: service.metrics.get("processed") == 1, within=10)
        assert await eventually(
            lambda: sum(service.metrics.get("failed", r) for r in set(counted)) == len(counted), within=10
        )
        for reason, count in Counter(counted).items():
            assert service.metrics.get("failed", reason) == count, reason
        assert service.metrics.get("received") == len(counted) + 1
        assert service.metrics.get("failed", "handler_error") == 0
    if kind == STATUS_KIND:
        assert (await reload(device)).last_status == {"ok": True}
    else:
        assert await event_payloads(device) == [{"ok": True}]
    assert await event_payloads(inactive) == []


async def test_a_retained_message_replayed_on_subscribe_never_moves_state_back() -> None:
    """Brokers replay a topic's retained message to every new subscription (shared ones included, in
    Mosquitto): after each handler restart the stale message comes again with the retain flag. It is counted
    as `retained` and ignored, whatever the kind."""
    device = await create_device()
    scheme = make_scheme()
    topics = [scheme.device_topic(device.username, kind) for kind in KINDS]
    async with device_client() as dev:
        for topic in topics:
            await dev.publish(topic, b'{"state": "old"}', qos=1, retain=True)
    client_id = unique("test-handler")  # restarted: the same replica (a second one would share the group)
    try:
        for _restart in range(2):
            async with running_handler(scheme, client_id=client_id) as service, device_client() as dev:
                assert await eventually(lambda s=service: s.metrics.get("failed", "retained") == len(KINDS))
                for topic in topics:
                    await dev.publish(topic, b'{"state": "new"}', qos=1)
                assert await eventually(lambda s=service: s.metrics.get("processed") == len(KINDS))
            stored = await reload(device)
            if STATUS_KIND in KINDS:
                assert stored.last_status == {"state": "new"}
            assert {p["state"] for p in await event_payloads(device)} <= {"new"}
    finally:
        async with device_client() as dev:  # an empty retained message clears the broker's copy
            for topic in topics:
                await dev.publish(topic, b"", qos=1, retain=True)


async def test_a_burst_is_stored_completely_in_batches() -> None:
    devices = [await create_device() for _ in range(5)]
    scheme, kind = history_scheme()
    per_device = 100
    async with running_handler(scheme) as service, device_client() as dev:
        await asyncio.gather(
            *(
                dev.publish(scheme.device_topic(d.username, kind), json.dumps({"seq": i}).encode(), qos=1)
                for i in range(per_device)
                for d in devices
            )
        )
        total = per_device * len(devices)
        if STATUS_KIND in scheme.kinds:
            await dev.publish(
                scheme.device_topic(devices[0].username, STATUS_KIND), b'{"final": true}', qos=1
            )
            total += 1
        assert await eventually(lambda: service.metrics.get("processed") == total, within=20)
        assert service.metrics.get("ws_push_failed") == 0
    for d in devices:
        payloads = await event_payloads(d)
        assert sorted(p["seq"] for p in payloads) == list(range(per_device))
    if STATUS_KIND in scheme.kinds:
        assert (await reload(devices[0])).last_status == {"final": True}
