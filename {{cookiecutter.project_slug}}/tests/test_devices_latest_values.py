"""`Device.latest`: the newest message of each kind on the device row, written with one UPDATE per batch and
only forward in time, whatever order the messages arrive or are batched in."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from apps.devices.latest_values import LatestValue, latest_entry, latest_params, update_sql
from apps.devices.models import Device
from apps.mqtt_service.bulk_sql import batch_cursor
from apps.mqtt_service.device_store import get_store
from apps.mqtt_service.handlers import STATUS_KIND, store_history, store_latest_status
from apps.mqtt_service.router import DeviceMessage
from mqtt_helpers import unique

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def apply(*values: LatestValue) -> None:
    """One batch: one UPDATE."""
    with batch_cursor() as cursor:
        cursor.execute(update_sql(), latest_params(values))


def latest_of(device: Device) -> dict[str, Any]:
    return Device.objects.get(pk=device.pk).latest


def row_version(device: Device) -> str:
    """The row's xmin: it changes with every write of the row, even one that writes the same value."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT xmin::text FROM {Device._meta.db_table} WHERE id = %s", [device.pk])  # noqa: S608 - the model's table
        return cursor.fetchone()[0]


@pytest.fixture
def device() -> Device:
    return Device.objects.create(username=unique("latest"))


@pytest.mark.django_db
def test_an_entry_holds_the_data_its_time_and_epoch_milliseconds() -> None:
    received = datetime(2026, 1, 1, 0, 0, 1, 234567, tzinfo=UTC)
    assert latest_entry({"t": 1}, received) == {
        "data": {"t": 1},
        "at": "2026-01-01T00:00:01.234567+00:00",
        "ts": 1767225601234,
    }


@pytest.mark.django_db
def test_a_batch_keeps_the_newest_message_of_each_kind_whatever_its_position(device: Device) -> None:
    apply(
        LatestValue(device.pk, "temperature", {"c": 21}, at(2)),
        LatestValue(device.pk, "temperature", {"c": 19}, at(1)),
        LatestValue(device.pk, STATUS_KIND, {"battery": 80}, at(1)),
        LatestValue(device.pk, STATUS_KIND, {"battery": 79}, at(3)),
        LatestValue(device.pk, "humidity", {"rh": 40}, at(0)),
    )
    assert latest_of(device) == {
        "temperature": latest_entry({"c": 21}, at(2)),
        STATUS_KIND: latest_entry({"battery": 79}, at(3)),
        "humidity": latest_entry({"rh": 40}, at(0)),
    }


@pytest.mark.django_db
def test_an_older_message_in_a_later_batch_never_overwrites_a_newer_value(device: Device) -> None:
    apply(
        LatestValue(device.pk, "temperature", {"c": 21}, at(10)),
        LatestValue(device.pk, "door", {"o": 1}, at(5)),
    )
    version = row_version(device)
    apply(LatestValue(device.pk, "temperature", {"c": 15}, at(9)))
    assert latest_of(device)["temperature"] == latest_entry({"c": 21}, at(10))
    assert row_version(device) == version, "a batch with nothing newer must not write the row"
    # A later batch mixing a late message and a new one: only the new one lands.
    apply(
        LatestValue(device.pk, "temperature", {"c": 14}, at(8)),
        LatestValue(device.pk, "door", {"o": 0}, at(11)),
    )
    assert latest_of(device) == {
        "temperature": latest_entry({"c": 21}, at(10)),
        "door": latest_entry({"o": 0}, at(11)),
    }


@pytest.mark.django_db
def test_the_same_write_moves_last_seen_forward_to_the_newest_message_only(device: Device) -> None:
    apply(
        LatestValue(device.pk, "temperature", {"c": 21}, at(2)),
        LatestValue(device.pk, "door", {"o": 1}, at(7)),
    )
    assert Device.objects.get(pk=device.pk).last_seen_at == at(7)
    # A late message that is still the newest of its kind lands, but last seen never moves back.
    apply(LatestValue(device.pk, "humidity", {"rh": 40}, at(4)))
    refreshed = Device.objects.get(pk=device.pk)
    assert "humidity" in refreshed.latest
    assert refreshed.last_seen_at == at(7)


@pytest.mark.django_db
def test_newer_messages_replace_and_other_devices_stay_untouched(device: Device) -> None:
    other = Device.objects.create(
        username=unique("latest"), latest={"temperature": latest_entry({"c": 1}, at(0))}
    )
    apply(LatestValue(device.pk, "temperature", {"c": 20}, at(1)))
    apply(LatestValue(device.pk, "temperature", {"c": 22}, at(2)))
    assert latest_of(device) == {"temperature": latest_entry({"c": 22}, at(2))}
    assert latest_of(other) == {"temperature": latest_entry({"c": 1}, at(0))}


@pytest.mark.django_db
def test_a_message_of_the_same_millisecond_in_a_later_batch_wins(device: Device) -> None:
    apply(LatestValue(device.pk, "temperature", {"c": 20}, at(1)))
    apply(LatestValue(device.pk, "temperature", {"c": 21}, at(1)))
    assert latest_of(device)["temperature"]["data"] == {"c": 21}


@pytest.mark.django_db
def test_a_hand_written_value_without_a_time_is_replaced(device: Device) -> None:
    Device.objects.filter(pk=device.pk).update(latest={"temperature": {"data": {"c": 99}}, "note": "kept"})
    apply(LatestValue(device.pk, "temperature", {"c": 20}, at(1)))
    assert latest_of(device) == {"temperature": latest_entry({"c": 20}, at(1)), "note": "kept"}
    Device.objects.filter(pk=device.pk).update(latest=["not", "an", "object"])
    apply(LatestValue(device.pk, "temperature", {"c": 21}, at(2)))
    assert latest_of(device) == {"temperature": latest_entry({"c": 21}, at(2))}


def message(device: Device, kind: str, payload: dict[str, Any], received_at: datetime) -> DeviceMessage:
    return DeviceMessage(
        username=device.username,
        kind=kind,
        topic="unused",
        payload=payload,
        received_at=received_at,
        qos=1,
        retain=False,
        device_id=device.pk,
        owner_id=None,
    )


@pytest.mark.django_db(transaction=True)
async def test_every_stored_message_updates_the_latest_value_of_its_kind_through_the_handler_store() -> None:
    device = await database_sync_to_async(Device.objects.create)(username=unique("latest"))
    try:
        # One batch per writer: a status and two history messages of one device, out of order.
        await asyncio.gather(
            store_latest_status(message(device, STATUS_KIND, {"battery": 80}, at(5))),
            store_history(message(device, "temperature", {"c": 22}, at(4))),
            store_history(message(device, "temperature", {"c": 20}, at(3))),
        )
        # Later batches with older messages change nothing.
        await store_latest_status(message(device, STATUS_KIND, {"battery": 90}, at(1)))
        await store_history(message(device, "temperature", {"c": 10}, at(1)))
    finally:
        await get_store().close()
    stored = await database_sync_to_async(Device.objects.get)(pk=device.pk)
    assert stored.latest == {
        STATUS_KIND: latest_entry({"battery": 80}, at(5)),
        "temperature": latest_entry({"c": 22}, at(4)),
    }
    # The status's own columns behave as before.
    assert stored.last_status == {"battery": 80}
    assert stored.last_seen_at == at(5)
    history = await database_sync_to_async(lambda: sorted(e.payload["c"] for e in stored.events.all()))()
    assert history == [10, 20, 22]


@pytest.mark.django_db(transaction=True)
async def test_a_status_stored_after_a_later_event_still_becomes_the_last_status() -> None:
    """Statuses and events are stored by different batches; an event's batch may commit first. The status
    is still the device's newest status: last_status follows the statuses' own order, not last_seen_at."""
    device = await database_sync_to_async(Device.objects.create)(username=unique("latest"))
    try:
        await store_history(message(device, "temperature", {"c": 20}, at(5)))
        await store_latest_status(message(device, STATUS_KIND, {"battery": 80}, at(3)))
        await store_latest_status(message(device, STATUS_KIND, {"battery": 70}, at(2)))  # late: ignored
    finally:
        await get_store().close()
    stored = await database_sync_to_async(Device.objects.get)(pk=device.pk)
    assert stored.last_status == {"battery": 80}
    assert stored.last_seen_at == at(5)
