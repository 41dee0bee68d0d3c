"""Telemetry history, presence history and a device's commands: newest first, cursor-paged, filtered; the
history query is served by the (device, kind, -received_at) / (device, -received_at) indexes."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api_fixtures import Fleet, client_for, make_command, make_fleet
from apps.commands.models import CommandState
from apps.devices.models import DeviceEvent, PresenceEvent
from apps.mqtt_service import topology

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KIND = topology.DEVICE_MESSAGE_KINDS[0]
# History of a kind that is no longer answered stays readable (and is not matched by ?kind=<KIND>).
RETIRED = "retired-kind"


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


def add_events(fleet: Fleet, kinds: list[str], start: datetime = T0) -> None:
    DeviceEvent.objects.bulk_create(
        DeviceEvent(
            device=fleet.alice_device, kind=kind, payload={"n": i}, received_at=start + timedelta(minutes=i)
        )
        for i, kind in enumerate(kinds)
    )


def every_page(client, url: str, params: dict) -> list[dict]:
    """Follow `next` to the end; every page must be a 200."""
    response = client.get(url, params)
    rows = []
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        rows += body["results"]
        if body["next"] is None:
            return rows
        response = client.get(body["next"])


def test_history_is_newest_first_and_shaped(fleet: Fleet) -> None:
    add_events(fleet, [KIND, RETIRED])
    body = client_for(fleet.alice).get("/api/devices/alice-meter/history/").json()
    assert body["results"] == [
        {"kind": RETIRED, "payload": {"n": 1}, "received_at": "2026-03-01T12:01:00+00:00"},
        {"kind": KIND, "payload": {"n": 0}, "received_at": "2026-03-01T12:00:00+00:00"},
    ]
    assert body["next"] is None
    assert body["previous"] is None


def test_history_cursor_visits_every_row_once_even_with_equal_times(fleet: Fleet) -> None:
    add_events(fleet, [KIND] * 7)
    DeviceEvent.objects.bulk_create(
        DeviceEvent(device=fleet.alice_device, kind=KIND, payload={"tie": i}, received_at=T0)
        for i in range(4)
    )
    rows = every_page(client_for(fleet.alice), "/api/devices/alice-meter/history/", {"page_size": 3})
    assert len(rows) == 11
    assert [row["payload"].get("n") for row in rows[:7]] == [6, 5, 4, 3, 2, 1, 0]
    assert sorted(row["payload"]["tie"] for row in rows if "tie" in row["payload"]) == [0, 1, 2, 3]


def test_history_filters_by_kind_and_time_range(fleet: Fleet) -> None:
    add_events(fleet, [KIND, RETIRED, KIND, RETIRED, KIND])
    client = client_for(fleet.alice)
    url = "/api/devices/alice-meter/history/"
    kinds = client.get(url, {"kind": KIND}).json()["results"]
    assert [row["payload"]["n"] for row in kinds] == [4, 2, 0]
    window = {"since": "2026-03-01T12:01:00+00:00", "until": "2026-03-01T12:03:00Z"}
    assert [row["payload"]["n"] for row in client.get(url, window).json()["results"]] == [2, 1]
    # Another offset, the same instant: 13:03 at +01:00 is 12:03 UTC.
    later = client.get(url, {"since": "2026-03-01T13:03:00+01:00"}).json()["results"]
    assert [row["payload"]["n"] for row in later] == [4, 3]


@pytest.mark.parametrize(
    ("params", "index"),
    [({"kind": KIND}, "devices_event_device_kind_time"), ({}, "devices_event_device_time")],
)
def test_history_query_is_served_by_its_index(fleet: Fleet, params: dict, index: str) -> None:
    add_events(fleet, [KIND, RETIRED] * 5)
    with CaptureQueriesContext(connection) as queries:
        response = client_for(fleet.alice).get(
            "/api/devices/alice-meter/history/", {**params, "page_size": 2}
        )
    assert response.status_code == 200
    (history_sql,) = [q["sql"] for q in queries.captured_queries if 'FROM "devices_deviceevent"' in q["sql"]]
    with connection.cursor() as cursor:
        # A tiny table is read whole whatever its indexes; without whole-table and bitmap scans the plan shows
        # which index fits the query, and a Sort node would show that none gives its order.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {history_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan, plan
    assert "Sort" not in plan, plan  # the index gives the newest-first order


def test_presence_history(fleet: Fleet) -> None:
    PresenceEvent.objects.create(device=fleet.alice_device, online=True, at=T0, source="device")
    PresenceEvent.objects.create(
        device=fleet.alice_device,
        online=False,
        at=T0 + timedelta(seconds=5),
        reason="inactivity",
        source="inactivity",
    )
    body = client_for(fleet.alice).get("/api/devices/alice-meter/presence/").json()
    assert body["results"] == [
        {"online": False, "at": "2026-03-01T12:00:05+00:00", "reason": "inactivity", "source": "inactivity"},
        {"online": True, "at": "2026-03-01T12:00:00+00:00", "reason": "", "source": "device"},
    ]


def test_commands_of_a_device_newest_first_filtered_by_state(fleet: Fleet) -> None:
    older = make_command(fleet.alice_device, "reboot", queued_at=T0)
    newer = make_command(
        fleet.alice_device, "blink", queued_at=T0 + timedelta(seconds=1), state=CommandState.SENT
    )
    make_command(fleet.bob_device, "water")
    client = client_for(fleet.alice)
    rows = client.get("/api/devices/alice-meter/commands/").json()["results"]
    assert [row["id"] for row in rows] == [str(newer.id), str(older.id)]
    assert set(rows[0]) == {
        "id",
        "device",
        "name",
        "params",
        "state",
        "timeout",
        "deadline",
        "queued_at",
        "sent_at",
        "delivered_at",
        "succeeded_at",
        "failed_at",
        "expired_at",
        "timed_out_at",
        "result",
        "error",
    }
    sent = client.get("/api/devices/alice-meter/commands/", {"state": "sent"}).json()["results"]
    assert [row["name"] for row in sent] == ["blink"]
