"""Retention: history older than the retention period is deleted, in small batches that each commit on their
own; everything younger, and other devices' young rows, stay."""

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.devices.models import Device, DeviceEvent, PresenceEvent
from apps.devices.retention import PruneAlreadyRunningError, prune_telemetry, retention_cutoff
from apps.devices.tasks import prune_telemetry_history
from database_helpers import own_connection
from mqtt_helpers import unique

# A prune commits batch by batch, which the test transaction of a plain django_db test would hide.
prunes = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAYS = 7
CUTOFF = NOW - timedelta(days=DAYS)
JUST = timedelta(microseconds=1)


def add_events(device: Device, *times: datetime) -> None:
    DeviceEvent.objects.bulk_create(
        DeviceEvent(device=device, kind="temperature", payload={"n": n}, received_at=t)
        for n, t in enumerate(times)
    )


def add_presence(device: Device, *times: datetime) -> None:
    for t in times:
        event = PresenceEvent.objects.create(device=device, online=True, at=t, source="device")
        # recorded_at is set on insert (auto_now_add): move it back as if recorded then.
        PresenceEvent.objects.filter(pk=event.pk).update(recorded_at=t)


def event_times(device: Device) -> list[datetime]:
    return sorted(DeviceEvent.objects.filter(device=device).values_list("received_at", flat=True))


def presence_times(device: Device) -> list[datetime]:
    return sorted(PresenceEvent.objects.filter(device=device).values_list("recorded_at", flat=True))


@pytest.fixture
def devices() -> tuple[Device, Device]:
    return Device.objects.create(username=unique("keep")), Device.objects.create(username=unique("keep"))


@prunes
def test_rows_older_than_the_period_are_deleted_and_the_boundary_row_is_kept(
    devices: tuple[Device, Device],
) -> None:
    device, other = devices
    add_events(device, CUTOFF - timedelta(days=30), CUTOFF - JUST, CUTOFF, CUTOFF + JUST, NOW)
    add_events(other, CUTOFF - JUST, CUTOFF + timedelta(hours=1))
    add_presence(device, CUTOFF - timedelta(days=2), CUTOFF, NOW)
    results = prune_telemetry(DAYS, now=NOW)
    assert event_times(device) == [CUTOFF, CUTOFF + JUST, NOW]
    assert event_times(other) == [CUTOFF + timedelta(hours=1)]
    assert presence_times(device) == [CUTOFF, NOW]
    assert {r.table: r.deleted for r in results} == {"devices.DeviceEvent": 3, "devices.PresenceEvent": 1}
    assert all(r.cutoff == CUTOFF for r in results)


@prunes
def test_every_batch_is_bounded_and_rows_of_one_instant_split_across_batches_all_go(
    devices: tuple[Device, Device],
) -> None:
    device, _ = devices
    # Seven rows of the same instant: a batch of three ends in the middle of them.
    add_events(
        device, *[CUTOFF - timedelta(days=1)] * 7, *[CUTOFF - timedelta(hours=n + 1) for n in range(4)], NOW
    )
    batches: list[tuple[str, int]] = []
    results = prune_telemetry(
        DAYS, now=NOW, batch_size=3, on_batch=lambda table, rows, _: batches.append((table, rows))
    )
    assert event_times(device) == [NOW]
    assert batches == [("devices.DeviceEvent", 3)] * 3 + [("devices.DeviceEvent", 2)]
    assert results[0].batches == 4


@prunes
def test_a_dry_run_counts_and_deletes_nothing(devices: tuple[Device, Device]) -> None:
    device, _ = devices
    add_events(device, CUTOFF - JUST, CUTOFF - timedelta(days=1), NOW)
    add_presence(device, CUTOFF - JUST)
    results = prune_telemetry(DAYS, now=NOW, dry_run=True)
    assert {r.table: r.would_delete for r in results} == {
        "devices.DeviceEvent": 2,
        "devices.PresenceEvent": 1,
    }
    assert len(event_times(device)) == 3
    assert len(presence_times(device)) == 1


@prunes
def test_the_period_defaults_to_the_setting(devices: tuple[Device, Device], settings: Any) -> None:
    device, _ = devices
    settings.TELEMETRY_RETENTION_DAYS = 2
    add_events(device, NOW - timedelta(days=2) - JUST, NOW - timedelta(days=2))
    prune_telemetry(now=NOW)
    assert event_times(device) == [NOW - timedelta(days=2)]


@pytest.mark.parametrize("days", [0, -1, 1.5, True])
def test_a_period_that_is_not_a_positive_whole_number_of_days_is_refused(days: Any) -> None:
    with pytest.raises(ValueError, match="whole number of days"):
        retention_cutoff(days)


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch size"):
        prune_telemetry(1, batch_size=0)


@prunes
def test_a_second_run_while_one_holds_the_lock_is_refused_and_the_task_skips_it(
    devices: tuple[Device, Device],
) -> None:
    device, _ = devices
    add_events(device, CUTOFF - timedelta(days=settings.TELEMETRY_RETENTION_DAYS))
    with own_connection() as other:
        other.execute("SELECT pg_advisory_lock(hashtext('telemetry-retention'))")
        with pytest.raises(PruneAlreadyRunningError):
            prune_telemetry(DAYS, now=NOW)
        assert prune_telemetry_history() == {}
        assert len(event_times(device)) == 1
        # Released explicitly: a closed session's locks go only once its server process has ended, which
        # on a busy machine can be after the next statement of this test.
        other.execute("SELECT pg_advisory_unlock(hashtext('telemetry-retention'))")
    assert prune_telemetry_history() == {"devices.DeviceEvent": 1, "devices.PresenceEvent": 0}


@prunes
def test_the_command_runs_the_same_pruning(devices: tuple[Device, Device]) -> None:
    device, _ = devices
    now = datetime.now(UTC)
    add_events(device, now - timedelta(days=3), now - timedelta(hours=1))
    out = StringIO()
    call_command("prune_telemetry", "--days", "2", "--dry-run", stdout=out)
    assert "devices.DeviceEvent: would delete 1 rows" in out.getvalue()
    assert len(event_times(device)) == 2
    out = StringIO()
    call_command("prune_telemetry", "--days", "2", stdout=out)
    assert "devices.DeviceEvent: deleted 1 rows" in out.getvalue()
    assert event_times(device) == [now - timedelta(hours=1)]


@pytest.mark.parametrize("argument", ["--days=0", "--days=two", "--batch-size=0"])
def test_the_command_refuses_a_bad_number_with_a_clear_message(argument: str) -> None:
    with pytest.raises(CommandError, match="whole number, at least 1"):
        call_command("prune_telemetry", argument)


def test_the_beat_schedule_runs_the_registered_task_hourly() -> None:
    from config.celery import app

    app.loader.import_default_modules()
    [entry] = [
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"].endswith("prune_telemetry_history")
    ]
    assert entry["task"] in app.tasks
    assert entry["schedule"] == 3600.0
