"""Presence events per second through the real handler service (a figure, not a timed assertion).

`pytest -s -m slow tests/test_presence_throughput.py` prints, for EMQX client events and for device presence
messages, how many events per second the handler took through parsing, the device lookup and the conditional
update. Each event is newer than the one before for its device and flips it, so an event applied in order
also writes a PresenceEvent row and pushes `device.presence` (the figure printed next to it: events the
handler's concurrent workers applied after a newer one of the same device change nothing, by design). As many
plain device messages go through the same handler in the same run, as the baseline.
"""

import asyncio
import dataclasses
import json
import time
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.devices.models import Device, PresenceEvent
from apps.mqtt_service import topology
from apps.mqtt_service.handler_service import HandlerService
from mqtt_helpers import device_client, make_scheme, running_handler, unique

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEVICES = 100
EVENTS = 1000
WITHIN = 300.0
PUBLISH_WINDOW = 100


@database_sync_to_async
def create_devices() -> list[Device]:
    return Device.objects.bulk_create(Device(username=unique("dev")) for _ in range(DEVICES))


@database_sync_to_async
def recorded() -> int:
    return PresenceEvent.objects.count()


def emqx_event(device: Device, online: bool, at_ms: int) -> bytes:
    field = "connected_at" if online else "disconnected_at"
    payload = {"clientid": device.username, "username": device.username, field: at_ms, "ts": at_ms}
    if not online:
        payload["reason"] = "sock_closed"
    return json.dumps(payload).encode()


async def publish_all(client: Any, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1, up to PUBLISH_WINDOW awaiting their PUBACK at once (in order: one device's events are
    CHUNK messages apart)."""
    for start in range(0, len(messages), PUBLISH_WINDOW):
        chunk = messages[start : start + PUBLISH_WINDOW]
        await asyncio.gather(*(client.publish(topic, payload, qos=1) for topic, payload in chunk))


async def measure(
    service: HandlerService, client: Any, messages: list[tuple[str, bytes]]
) -> tuple[float, int]:
    """Events per second from the first publish until the handler has handled the last; state changes."""
    recorded_before = await recorded()
    target = service.metrics.get("processed") + len(messages)
    started = time.perf_counter()
    await publish_all(client, messages)
    deadline = time.monotonic() + WITHIN
    while service.metrics.get("processed") < target:
        assert time.monotonic() < deadline, f"{service.metrics.get('processed')} of {target} handled"
        await asyncio.sleep(0.01)
    return len(messages) / (time.perf_counter() - started), await recorded() - recorded_before


async def test_presence_events_per_second_through_the_handler() -> None:
    devices = await create_devices()
    scheme = dataclasses.replace(make_scheme(), client_event_prefix=f"bench_{uuid.uuid4().hex[:8]}/brokers")
    start_ms = round(time.time() * 1000) - 10 * EVENTS
    rounds = [(n, devices[n % DEVICES], (n // DEVICES) % 2 == 0) for n in range(EVENTS)]
    emqx = [
        (
            f"{scheme.client_event_prefix}/emqx@bench/clients/{device.username}/"
            + ("connected" if online else "disconnected"),
            emqx_event(device, online, start_ms + n),
        )
        for n, device, online in rounds
    ]
    protocol = [
        (
            scheme.device_topic(device.username, topology.PRESENCE_KIND),
            json.dumps({"online": online, "conn": f"c{n // (2 * DEVICES)}"}).encode(),
        )
        for n, device, online in rounds
    ]
    # The baseline in the same run: as many plain device messages (an answered kind, stored as usual).
    kind = scheme.kinds[0]
    plain = [(scheme.device_topic(device.username, kind), b'{"value": 1}') for _, device, _ in rounds]
    figures = {}
    async with running_handler(scheme) as service, device_client() as client:
        figures["EMQX client events"] = await measure(service, client, emqx)
        figures["device presence messages"] = await measure(service, client, protocol)
        figures[f"baseline: {kind} messages"] = await measure(service, client, plain)
    assert service.metrics.get("failed") == 0
    for source, (rate, changes) in figures.items():
        counts = f"{EVENTS} over {DEVICES} devices, {changes} flips"
        print(f"\nthrough the handler, {source}: {rate:,.0f}/s ({counts})")
