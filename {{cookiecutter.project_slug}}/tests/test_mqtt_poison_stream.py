"""Valid messages from several devices, interleaved with every kind of bad input, through the real broker,
handler, database and logged-in WebSockets: each valid message is stored and pushed, each bad one is
counted under its reason, nothing is lost, and the log stays a few lines long."""

import json
import logging
from collections import Counter
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service.handlers import STATUS_KIND
from apps.mqtt_service.payloads import INT64_MAX, INT64_MIN, MAX_DEPTH
from mqtt_helpers import (
    KINDS,
    device_client,
    eventually,
    leave_stale_subscription,
    make_scheme,
    running_handler,
    unique,
)

pytestmark = pytest.mark.django_db(transaction=True)

VALID_PER_DEVICE = 40
DEVICES = 3


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


# Payloads that are valid however close to a limit they come: refused, they would be false alarms.
EDGE_VALUES = [
    {"max": INT64_MAX, "min": INT64_MIN},
    {"big": 1e308, "tiny": 5e-324},
    {"emoji": "\U0001f600 \u00e9 \u2028"},  # sent escaped, as the surrogate pair \ud83d\ude00
    {"deep": nested(MAX_DEPTH - 1)},
    {"k\u00e9y": [None, True, 0.5, ""]},
]

# (payload, reason) for a device's own, answered topic.
POISON_PAYLOADS = [
    (b'{"n": 1e999}', "bad_number"),
    (b'{"n": -1E+999}', "bad_number"),
    (b'{"n": NaN}', "bad_number"),
    (b'{"n": Infinity}', "bad_number"),
    (b'{"n": 18446744073709551616}', "bad_number"),
    (b'{"n": -9223372036854775809}', "bad_number"),
    (b'{"s": "a\\u0000b"}', "bad_text"),
    (b'{"a\\u0000": 1}', "bad_text"),
    (b'{"s": "\\ud800"}', "bad_text"),
    (b"[" * 30_000 + b"]" * 30_000, "too_deep"),
    (b'{"d": ' + json.dumps(nested(MAX_DEPTH + 1)).encode() + b"}", "too_deep"),
    (b"{not json", "not_json"),
    (b"\xc3\x28", "not_utf8"),
    (b"[1]", "not_object"),
    (b'{"x": "' + b"a" * 70_000 + b'"}', "too_large"),
]


@database_sync_to_async
def create_owned_devices(make_user: Any) -> list[Device]:
    return [Device.objects.create(username=unique("dev"), owner=make_user()) for _ in range(DEVICES)]


@database_sync_to_async
def stored(device: Device) -> tuple[Any, list[tuple[str, Any]]]:
    device.refresh_from_db()
    events = DeviceEvent.objects.filter(device=device).values_list("kind", "payload")
    return device.last_status, list(events)


def comparable(value: Any) -> Any:
    """jsonb keeps numbers as decimals: 1e308 comes back as the integer 10**308. Compare large numbers as
    the floats they stand for."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [comparable(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return float(value)
    return value


def valid_stream(device: Device) -> list[tuple[str, dict[str, Any]]]:
    """(kind, payload) of one device, every answered kind in turn, some payloads at the edge of the rules."""
    stream = []
    for seq in range(VALID_PER_DEVICE):
        payload = {"seq": seq, "device": device.username, **EDGE_VALUES[seq % len(EDGE_VALUES)]}
        stream.append((KINDS[seq % len(KINDS)], payload))
    return stream


async def test_valid_messages_survive_a_stream_of_every_poison(
    open_socket: Any, make_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apps.mqtt_service")
    devices = await create_owned_devices(make_user)
    sockets = {}
    for device in devices:
        owner = await database_sync_to_async(lambda d=device: d.owner)()
        sockets[device.username], connected, _ = await open_socket(user=owner)
        assert connected
    scheme = make_scheme()
    client_id = unique("test-handler")
    expected: Counter[str] = Counter()
    retained_topics = [scheme.device_topic(device.username, KINDS[0]) for device in devices]
    async with device_client() as dev:
        for topic in retained_topics:  # replayed with the retain flag on every subscribe
            await dev.publish(topic, b'{"seq": -1}', qos=1, retain=True)
    try:
        await leave_stale_subscription(scheme, "retired_kind", client_id)
        async with running_handler(scheme, client_id=client_id) as service, device_client() as dev:
            streams = {device.username: valid_stream(device) for device in devices}
            for seq in range(VALID_PER_DEVICE):
                for device in devices:
                    kind, payload = streams[device.username][seq]
                    topic = scheme.device_topic(device.username, kind)
                    await dev.publish(topic, json.dumps(payload).encode(), qos=1)
                    poison, reason = POISON_PAYLOADS[(seq + devices.index(device)) % len(POISON_PAYLOADS)]
                    if seq % 2 == 0:
                        await dev.publish(topic, poison, qos=1)
                        expected[reason] += 1
                if seq % 10 == 0:
                    await dev.publish(scheme.device_topic(unique("ghost"), KINDS[0]), b"{}", qos=1)
                    await dev.publish(scheme.device_topic(devices[0].username, "retired_kind"), b"{}", qos=1)
                    await dev.publish(scheme.device_topic("Bad Name", KINDS[0]), b"{}", qos=1)
                    expected.update(["unknown_device", "unknown_kind", "bad_topic"])
            valid_total = VALID_PER_DEVICE * DEVICES
            assert await eventually(lambda: service.metrics.get("processed") == valid_total, within=20)
            # The replays of the retained messages come once per subscribe; those of the short earlier run
            # may still wait in the session: at least one per device.
            retained = service.metrics.get("failed", "retained")
            assert retained in (DEVICES, 2 * DEVICES)
            assert await eventually(
                lambda: service.metrics.get("received") == valid_total + sum(expected.values()) + retained
            )
            for reason, count in expected.items():
                assert service.metrics.get("failed", reason) == count, reason
            expected["retained"] = retained
            assert service.metrics.get("failed", "handler_error") == 0
            assert service.metrics.get("ws_push_failed") == 0
            for device in devices:
                socket = sockets[device.username]
                frames = [await socket.receive_json_from(timeout=10) for _ in range(VALID_PER_DEVICE)]
                assert await socket.receive_nothing(timeout=0.2)
                pushed = [(frame["type"], frame["data"]) for frame in frames]
                sent = [(f"device.{kind}", payload) for kind, payload in streams[device.username]]
                assert sorted(pushed, key=lambda p: p[1]["seq"]) == sent
    finally:
        async with device_client() as dev:
            for topic in retained_topics:
                await dev.publish(topic, b"", qos=1, retain=True)
    for device in devices:
        last_status, events = await stored(device)
        sent = streams[device.username]
        history = [[kind, payload] for kind, payload in sent if kind != STATUS_KIND]
        assert comparable(sorted(events, key=lambda e: e[1]["seq"])) == comparable(history)
        statuses = [payload for kind, payload in sent if kind == STATUS_KIND]
        assert comparable(last_status) == comparable(statuses[-1] if statuses else None)
    # Bounded logs: one line per reason per interval, no traceback.
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= len(expected) + 2, [r.getMessage()[:120] for r in warnings]
    assert not any(r.exc_info for r in warnings)
    assert sum(len(r.getMessage()) for r in warnings) < 20_000
