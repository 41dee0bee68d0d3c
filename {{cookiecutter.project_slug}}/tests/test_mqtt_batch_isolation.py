"""A batch is an optimisation, never a shared fate: when a batched write or push fails, the batching layer
flushes the failed items one by one, so a bad item fails alone and its neighbours go through.

These tests hand bad items to the batchers directly, past the handler's payload checks, as a project's own
handler (or a check that misses something) would."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError

from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service.batch import Batcher, Unavailable
from apps.mqtt_service.device_store import EventRow, StatusRow, get_store
from apps.mqtt_service.handlers import PushFailedError, push_to_websocket
from apps.mqtt_service.router import DeviceMessage
from mqtt_helpers import unique

POISON = "poison"


class RecordingFlush:
    """A flush that fails the whole batch when it holds the poison (like one SQL statement would)."""

    def __init__(self, error: type[Exception] = ValueError) -> None:
        self.error = error
        self.calls: list[list[str]] = []

    async def __call__(self, items: list[str]) -> list[str]:
        self.calls.append(list(items))
        await asyncio.sleep(0)
        if POISON in items:
            raise self.error("the batch holds a poison item")
        return [item.upper() for item in items]


async def submit_all(batcher: Batcher[str, str], items: list[str]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(item) for item in items), return_exceptions=True)


async def test_a_failing_flush_is_retried_item_by_item_and_only_the_bad_item_fails() -> None:
    flush = RecordingFlush()
    batcher = Batcher(flush, name="test")
    items = [f"item{n}" for n in range(5)] + [POISON] + [f"item{n}" for n in range(5, 10)]
    results = await submit_all(batcher, items)
    await batcher.close()
    assert [r for r in results if not isinstance(r, Exception)] == [i.upper() for i in items if i != POISON]
    assert isinstance(results[5], ValueError)
    assert flush.calls[0] == items  # one batch first, then each item alone
    assert sorted(call[0] for call in flush.calls[1:]) == sorted(items)


async def test_items_reported_failed_are_retried_alone_and_the_others_are_not_sent_again() -> None:
    calls: list[list[str]] = []

    async def flush(items: list[str]) -> list[Any]:
        calls.append(list(items))
        if len(items) > 1:  # a batch failure that hit some items (e.g. one chunk of a push batch)
            return [RuntimeError("chunk failed") if i.startswith("b") else i for i in items]
        return [ValueError("refused") if items[0] == "b-poison" else items[0]]

    batcher = Batcher(flush, name="test")
    results = await submit_all(batcher, ["a1", "b1", "a2", "b-poison", "b2"])
    await batcher.close()
    assert results[:3] == ["a1", "b1", "a2"] and results[4] == "b2"
    assert isinstance(results[3], ValueError)
    assert calls[1:] == [["b1"], ["b-poison"], ["b2"]]


async def test_an_unavailable_dependency_fails_the_batch_without_item_by_item_retries() -> None:
    flush = RecordingFlush(error=Unavailable)
    batcher = Batcher(flush, name="test")
    results = await submit_all(batcher, ["a", POISON, "b"])
    await batcher.close()
    assert all(isinstance(r, Unavailable) for r in results)
    assert len(flush.calls) == 1


async def test_failure_logs_stay_bounded_under_a_flood(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="apps.mqtt_service")
    flush = RecordingFlush()
    batcher = Batcher(flush, name="test")
    for _ in range(50):
        await submit_all(batcher, ["a", POISON, "b"])
    await batcher.close()
    assert len(caplog.records) <= 2
    assert not any(record.exc_info for record in caplog.records)


# --- the built-in batchers, against the real database and channel layer ------------------------------------


@database_sync_to_async
def create_devices(count: int, owner: Any = None) -> list[Device]:
    return [Device.objects.create(username=unique("dev"), owner=owner) for _ in range(count)]


@database_sync_to_async
def statuses(devices: list[Device]) -> list[Any]:
    by_id = dict(Device.objects.filter(pk__in=[d.pk for d in devices]).values_list("pk", "last_status"))
    return [by_id[d.pk] for d in devices]


@database_sync_to_async
def events(devices: list[Device]) -> list[Any]:
    rows = DeviceEvent.objects.filter(device__in=devices).order_by("device_id", "id")
    return list(rows.values_list("payload", flat=True))


# What PostgreSQL refuses in jsonb: NUL in a string, a lone surrogate.
DATABASE_POISONS = [{"text": "nul \x00 inside"}, {"text": "lone \ud800"}]


def each_database_poison(test: Any) -> Any:
    test = pytest.mark.parametrize("poison", DATABASE_POISONS, ids=["nul", "surrogate"])(test)
    return pytest.mark.django_db(transaction=True)(test)


async def record_all(write: Any, rows: list[Any]) -> list[Any]:
    """Submit every row at once (one batch) through the store's batcher `write`; each row's outcome."""
    try:
        return await asyncio.gather(*(write(row) for row in rows), return_exceptions=True)
    finally:
        await get_store().close()


@each_database_poison
async def test_a_status_the_database_refuses_fails_alone(poison: dict[str, str]) -> None:
    devices = await create_devices(6)
    now = datetime.now(UTC)
    rows = [StatusRow(d.pk, poison if n == 3 else {"n": n}, now) for n, d in enumerate(devices)]
    results = await record_all(get_store().record_status, rows)
    assert [isinstance(r, DatabaseError) for r in results] == [n == 3 for n in range(6)]
    assert await statuses(devices) == [{"n": 0}, {"n": 1}, {"n": 2}, None, {"n": 4}, {"n": 5}]


@each_database_poison
async def test_an_event_the_database_refuses_fails_alone(poison: dict[str, str]) -> None:
    devices = await create_devices(2)
    now = datetime.now(UTC)
    rows = [EventRow(devices[n % 2].pk, "history", {"n": n}, now) for n in range(8)]
    rows.insert(4, EventRow(devices[0].pk, "history", poison, now))
    results = await record_all(get_store().record_event, rows)
    assert [isinstance(r, DatabaseError) for r in results] == [n == 4 for n in range(9)]
    assert sorted(p["n"] for p in await events(devices)) == list(range(8))


def device_message(device: Device, payload: dict[str, Any]) -> DeviceMessage:
    return DeviceMessage(
        username=device.username,
        kind="history",
        topic="unused",
        payload=payload,
        received_at=datetime.now(UTC),
        qos=1,
        retain=False,
        device_id=device.pk,
        owner_id=device.owner_id,
    )


@pytest.mark.django_db(transaction=True)
async def test_a_push_the_channel_layer_cannot_encode_fails_alone(open_socket: Any, make_user: Any) -> None:
    """msgpack refuses an integer >= 2**64: that push fails alone; every other push of the batch (in the same
    channel-layer message before) reaches the owner's socket, each once."""
    owner = await database_sync_to_async(make_user)()
    [device] = await create_devices(1, owner)
    socket, connected, _ = await open_socket(user=owner)
    assert connected
    payloads = [{"n": n} for n in range(20)]
    payloads[7] = {"n": 7, "huge": 2**64}
    results = await asyncio.gather(
        *(push_to_websocket(device_message(device, p)) for p in payloads), return_exceptions=True
    )
    assert [isinstance(r, PushFailedError) for r in results] == [n == 7 for n in range(20)]
    frames = [await socket.receive_json_from(timeout=5) for _ in range(19)]
    assert sorted(frame["data"]["n"] for frame in frames) == [n for n in range(20) if n != 7]
    assert await socket.receive_nothing(timeout=0.3)
