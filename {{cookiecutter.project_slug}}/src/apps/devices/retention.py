"""Telemetry retention: delete history rows older than TELEMETRY_RETENTION_DAYS, in small batches.

Each batch is one DELETE of at most `batch_size` rows, committed on its own (autocommit), so no lock is held
for longer than a batch takes and ingest goes on meanwhile. A batch finds its rows through the time index,
starting where the previous batch stopped (the dead index entries it left behind are never walked again), so
every batch costs the same however large the table and however much has already been deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from apps.devices.models import DeviceEvent, PresenceEvent

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000
# One pruning run at a time in the whole database (a beat run that overlaps a slow one, or the command
# started by hand): two runs would only fight over the same rows.
_LOCK_NAME = "telemetry-retention"


class PruneAlreadyRunningError(Exception):
    """Another process is pruning right now."""


@dataclass(frozen=True)
class HistoryTable:
    model: type[models.Model]
    time_field: str

    @property
    def label(self) -> str:
        return self.model._meta.label


# The history tables pruned, each with its indexed time column (server-side arrival time).
HISTORY_TABLES = (HistoryTable(DeviceEvent, "received_at"), HistoryTable(PresenceEvent, "recorded_at"))


@dataclass
class PruneResult:
    """What a run did to one table; `would_delete` is set instead of `deleted` on a dry run."""

    table: str
    cutoff: datetime
    deleted: int = 0
    would_delete: int | None = None
    batches: int = 0
    seconds: float = 0.0
    max_batch_seconds: float = 0.0


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """Rows older than this are deleted; a row exactly `days` old is kept."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"retention must be a whole number of days, at least 1 (got {days!r})")
    return (now or timezone.now()) - timedelta(days=days)


def _names(table: HistoryTable) -> tuple[str, str, str]:
    quote = connection.ops.quote_name
    meta = table.model._meta
    return quote(meta.db_table), quote(meta.pk.column), quote(meta.get_field(table.time_field).column)


def _delete_batch_sql(table: HistoryTable) -> str:
    name, pk, at = _names(table)
    # `= ANY(ARRAY(...))`, not `IN (...)`: with IN the planner may hash the batch's ids and scan the whole
    # table to find them, which makes each batch cost as much as the table is large.
    return (
        f"WITH gone AS (DELETE FROM {name} WHERE {pk} = ANY(ARRAY("  # noqa: S608 - quoted names
        f"SELECT {pk} FROM {name} WHERE {at} >= %s::timestamptz AND {at} < %s "
        f"ORDER BY {at} LIMIT %s)) RETURNING {at}) "
        f"SELECT count(*), max({at}) FROM gone"
    )


def explain_batch(table: HistoryTable, cutoff: datetime, batch_size: int = DEFAULT_BATCH_SIZE) -> str:
    """The plan PostgreSQL picks for one batch (not run): an operator checks it reads by index only."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {_delete_batch_sql(table)}", ["-infinity", cutoff, batch_size])
        return "\n".join(row[0] for row in cursor.fetchall())


def _count_sql(table: HistoryTable) -> str:
    name, _, at = _names(table)
    return f"SELECT count(*) FROM {name} WHERE {at} < %s"  # noqa: S608 - quoted names


def _prune_table(
    table: HistoryTable, cutoff: datetime, batch_size: int, on_batch: Callable[[str, int, float], None] | None
) -> PruneResult:
    result = PruneResult(table=table.label, cutoff=cutoff)
    sql = _delete_batch_sql(table)
    # Lower bound of the next batch: everything older is gone already. Rows of one instant split across two
    # batches are still found, as the bound is inclusive.
    since: datetime | str = "-infinity"
    started = time.perf_counter()
    while True:
        batch_started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(sql, [since, cutoff, batch_size])
            deleted, newest = cursor.fetchone()
        seconds = time.perf_counter() - batch_started
        if deleted:
            result.deleted += deleted
            result.batches += 1
            result.max_batch_seconds = max(result.max_batch_seconds, seconds)
            if on_batch is not None:
                on_batch(table.label, deleted, seconds)
        if deleted < batch_size:
            break
        since = newest
    result.seconds = time.perf_counter() - started
    return result


def prune_telemetry(
    days: int | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    now: datetime | None = None,
    on_batch: Callable[[str, int, float], None] | None = None,
) -> list[PruneResult]:
    """Delete DeviceEvent and PresenceEvent rows older than `days` (default TELEMETRY_RETENTION_DAYS).

    Runs outside any transaction: every batch commits on its own. `on_batch(table, rows, seconds)` is called
    after each batch. Raises PruneAlreadyRunningError when another run holds the lock.
    """
    cutoff = retention_cutoff(settings.TELEMETRY_RETENTION_DAYS if days is None else days, now)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a whole number, at least 1 (got {batch_size!r})")
    if connection.in_atomic_block:
        raise RuntimeError("prune_telemetry commits batch by batch: call it outside transaction.atomic()")
    if dry_run:
        results = []
        for table in HISTORY_TABLES:
            with connection.cursor() as cursor:
                cursor.execute(_count_sql(table), [cutoff])
                (count,) = cursor.fetchone()
            results.append(PruneResult(table=table.label, cutoff=cutoff, would_delete=count))
        return results
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_LOCK_NAME])
        (locked,) = cursor.fetchone()
    if not locked:
        raise PruneAlreadyRunningError("another telemetry pruning run is in progress")
    try:
        results = [_prune_table(table, cutoff, batch_size, on_batch) for table in HISTORY_TABLES]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_LOCK_NAME])
    for result in results:
        logger.info(
            "pruned %s: %d rows older than %s in %d batches, %.2fs (longest batch %.3fs)",
            result.table,
            result.deleted,
            result.cutoff.isoformat(),
            result.batches,
            result.seconds,
            result.max_batch_seconds,
        )
    return results
