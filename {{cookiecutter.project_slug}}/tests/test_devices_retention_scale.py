"""Retention on a table of a million rows: every delete is a small transaction of its own, nothing is held
between batches, and devices keep writing history meanwhile. Prints what it cost (rows/s, longest batch,
slowest concurrent insert): `pytest -m slow -s tests/test_devices_retention_scale.py`."""

import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.devices.models import Device, DeviceEvent
from apps.devices.retention import DEFAULT_BATCH_SIZE, HISTORY_TABLES, explain_batch, prune_telemetry
from database_helpers import own_connection
from mqtt_helpers import unique

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = 1_000_000
DAYS = 10
# Row n is n * STEP old: rows 0..100_000 are at most 10 days old (row 100_000 exactly: kept), the rest older.
STEP = timedelta(days=100) / ROWS
KEPT = ROWS // 10 + 1
DEVICES = 10


def insert_history(device_ids: list[int], newest: Any) -> None:
    table = DeviceEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (device_id, kind, payload, received_at) "  # noqa: S608 - the model's table
            "SELECT (%s::bigint[])[1 + n %% %s], 'temperature', jsonb_build_object('n', n), "
            "%s::timestamptz - n * %s::interval FROM generate_series(0, %s - 1) AS n",
            [device_ids, len(device_ids), newest, STEP, ROWS],
        )
        cursor.execute(f"ANALYZE {table}")


def locks_held_on(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND relation = %s::regclass", [table]
        )
        return cursor.fetchone()[0]


class Ingest:
    """A device writing history in a loop on its own connection; the slowest insert tells whether pruning
    ever blocked it."""

    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self.latencies: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with own_connection() as conn:
                while not self._stop.is_set():
                    started = time.perf_counter()
                    conn.execute(
                        f"INSERT INTO {DeviceEvent._meta.db_table} (device_id, kind, payload, received_at) "  # noqa: S608
                        "VALUES (%s, 'temperature', '{}', now())",
                        [self.device_id],
                    )
                    self.latencies.append(time.perf_counter() - started)
                    self._stop.wait(0.01)
        except BaseException as exc:  # handed to the test thread, which fails on it
            self.error = exc

    def __enter__(self) -> "Ingest":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture
def statements() -> Iterator[list[dict[str, Any]]]:
    """Every statement the prune runs on Django's connection, with its transaction state and duration."""
    seen: list[dict[str, Any]] = []

    def record(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
    ) -> Any:
        entry = {
            "sql": sql,
            "autocommit": connection.get_autocommit(),
            "atomic": connection.in_atomic_block,
        }
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry["seconds"] = time.perf_counter() - started
            seen.append(entry)

    with connection.execute_wrapper(record):
        yield seen


def test_pruning_a_million_rows_commits_small_batches_while_devices_keep_writing(
    statements: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    device_ids = [Device.objects.create(username=unique("scale")).pk for _ in range(DEVICES)]
    now = timezone.now()
    fill_started = time.perf_counter()
    insert_history(device_ids, now)
    fill_seconds = time.perf_counter() - fill_started
    statements.clear()
    # Each batch finds its rows through the time index and deletes them through the primary key: a plan
    # that scans the table would make every batch as slow as the table is large.
    [history] = [t for t in HISTORY_TABLES if t.model is DeviceEvent]
    plan = explain_batch(history, now - timedelta(days=DAYS))
    assert "Seq Scan" not in plan, plan

    table = DeviceEvent._meta.db_table
    batches: list[int] = []
    held_between_batches: list[int] = []

    def after_batch(label: str, rows: int, seconds: float) -> None:
        if label == DeviceEvent._meta.label:
            batches.append(rows)
            held_between_batches.append(locks_held_on(table))

    with Ingest(device_ids[0]) as ingest:
        results = prune_telemetry(DAYS, now=now, on_batch=after_batch)
    assert ingest.error is None
    assert ingest.latencies, "the concurrent device never wrote"

    [events] = [r for r in results if r.table == DeviceEvent._meta.label]
    deleted = ROWS - KEPT
    assert events.deleted == deleted
    assert DeviceEvent.objects.filter(received_at__lt=now - timedelta(days=DAYS)).count() == 0
    assert DeviceEvent.objects.count() == KEPT + len(ingest.latencies)
    # Small transactions: each delete takes at most one batch, commits on its own (autocommit, outside any
    # atomic block), and no lock on the table survives between two batches.
    assert batches == [DEFAULT_BATCH_SIZE] * (deleted // DEFAULT_BATCH_SIZE) + [deleted % DEFAULT_BATCH_SIZE]
    assert len(batches) == math.ceil(deleted / DEFAULT_BATCH_SIZE)
    deletes = [s for s in statements if s["sql"].lstrip().upper().startswith("WITH GONE AS (DELETE")]
    assert len(deletes) == len(batches) + 1  # the last one finds fewer than a batch: the end
    assert all(s["autocommit"] and not s["atomic"] for s in deletes)
    assert set(held_between_batches) == {0}

    with capsys.disabled():
        print(
            f"\nretention, {ROWS} rows ({fill_seconds:.1f}s to generate): deleted {events.deleted} in "
            f"{events.batches} batches of <= {DEFAULT_BATCH_SIZE}, {events.seconds:.1f}s = "
            f"{events.deleted / events.seconds:.0f} rows/s; longest delete transaction "
            f"{events.max_batch_seconds * 1000:.0f} ms; concurrent inserts: {len(ingest.latencies)}, "
            f"slowest {max(ingest.latencies) * 1000:.0f} ms"
        )
