"""Apply presence changes to devices, each only when it is newer than what the device row holds.

One statement per batch: it locks the device rows, updates them under the ordering rules (see the package
docstring) and, for each device whose `is_online` flipped, inserts the PresenceEvent, in one transaction. Two
replicas applying the same change wait for each other on the row lock; the second then finds the change no
longer newer (or a no-op) and records nothing. Applying a change twice is therefore harmless, which is also
what makes retrying after a lost database connection safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from apps.devices.models import Device, PresenceEvent
from apps.mqtt_service.batch import Batcher
from apps.mqtt_service.bulk_sql import batch_cursor
from apps.mqtt_service.connection import Backoff

logger = logging.getLogger(__name__)

Source = PresenceEvent.Source


@dataclass(frozen=True)
class PresenceChange:
    """An online/offline event of one device, timed by its source's clock."""

    online: bool
    at: datetime
    source: str  # a PresenceEvent.Source value
    reason: str = ""
    # The connection token the device named (its {"online": ..., "conn": ...}); None when it named none.
    conn: str | None = None


@dataclass(frozen=True)
class AppliedChange:
    """A change that was newer than the stored state and was written; `flipped`: is_online changed (then a
    PresenceEvent was recorded and the change is worth pushing)."""

    device_id: int
    username: str
    owner_id: int | None
    change: PresenceChange
    flipped: bool
    last_seen_at: datetime | None


# An online event is newer than the last disconnect, and brings something new: a later connect, a device that
# is not marked online, or another connection token. An offline event is newer than the last connect and the
# last disconnect, and does not name a connection other than the current one.
_APPLIES = """CASE WHEN ev.online THEN
    (d.last_disconnected_at IS NULL OR d.last_disconnected_at < ev.at)
    AND (d.last_connected_at IS NULL OR d.last_connected_at < ev.at OR NOT d.is_online
         OR (ev.conn IS NOT NULL AND d.connection_id <> ev.conn))
ELSE
    (d.last_connected_at IS NULL OR d.last_connected_at < ev.at)
    AND (d.last_disconnected_at IS NULL OR d.last_disconnected_at < ev.at)
    AND (ev.conn IS NULL OR d.connection_id = '' OR d.connection_id = ev.conn)
END"""

# One statement for many devices (each at most once). `old` locks the rows in id order (two replicas' batches
# cannot deadlock) and keeps is_online from before the update (RETURNING only sees the new row).
_APPLY_SQL = """
WITH ev(idx, id, online, at, reason, source, conn) AS (
    SELECT * FROM unnest(
        %b::int[], %b::bigint[], %b::boolean[], %b::timestamptz[], %b::text[], %b::text[], %b::text[]
    )
),
old AS (
    SELECT id, is_online FROM {device} WHERE id IN (SELECT id FROM ev) ORDER BY id FOR UPDATE
), updated AS (
    UPDATE {device} AS d SET
        is_online = ev.online,
        last_connected_at = CASE WHEN ev.online
            THEN GREATEST(d.last_connected_at, ev.at) ELSE d.last_connected_at END,
        last_disconnected_at = CASE WHEN ev.online THEN d.last_disconnected_at ELSE ev.at END,
        last_disconnect_reason = CASE WHEN ev.online THEN d.last_disconnect_reason ELSE ev.reason END,
        connection_id = CASE WHEN ev.online AND ev.conn IS NOT NULL THEN ev.conn ELSE d.connection_id END
    FROM ev, old
    WHERE d.id = ev.id AND old.id = d.id AND {applies}
    RETURNING ev.idx, d.username, d.owner_id, d.last_seen_at, old.is_online AS was_online
), recorded AS (
    INSERT INTO {event} (device_id, online, at, reason, source, recorded_at)
    SELECT ev.id, ev.online, ev.at, ev.reason, ev.source, %s
    FROM updated JOIN ev ON ev.idx = updated.idx WHERE updated.was_online <> ev.online
)
SELECT idx, username, owner_id, last_seen_at, was_online FROM updated
"""


def _apply_round(items: list[tuple[int, PresenceChange]]) -> list[AppliedChange | None]:
    """Apply changes of distinct devices in one statement."""
    quote = connection.ops.quote_name
    sql = _APPLY_SQL.format(
        device=quote(Device._meta.db_table),
        event=quote(PresenceEvent._meta.db_table),
        applies=_APPLIES,
    )
    changes = [change for _, change in items]
    params: list[Any] = [
        list(range(len(items))),
        [device_id for device_id, _ in items],
        [change.online for change in changes],
        [change.at for change in changes],
        [change.reason[:64] for change in changes],
        [str(change.source) for change in changes],
        [change.conn for change in changes],
        timezone.now(),
    ]
    results: list[AppliedChange | None] = [None] * len(items)
    with batch_cursor() as cursor:
        cursor.execute(sql, params)
        for index, username, owner_id, last_seen_at, was_online in cursor.fetchall():
            device_id, change = items[index]
            flipped = was_online != change.online
            results[index] = AppliedChange(device_id, username, owner_id, change, flipped, last_seen_at)
    return results


def apply_changes(items: list[tuple[int, PresenceChange]]) -> list[AppliedChange | None]:
    """Apply each (device id, change) the ordering rules allow, in one transaction; one result per item: the
    applied change, or None when it was ignored (older, a duplicate, another connection's, no such device).

    A statement takes each device once: a device's second change of the batch goes in the next statement,
    so each device's changes apply in the order given."""
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for index, (device_id, _) in enumerate(items):
        depth = seen.get(device_id, 0)
        seen[device_id] = depth + 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append(index)
    results: list[AppliedChange | None] = [None] * len(items)
    # One statement is atomic by itself; several (a device changing twice in the batch) share a transaction.
    with transaction.atomic() if len(rounds) > 1 else contextlib.nullcontext():
        for indexes in rounds:
            for index, result in zip(indexes, _apply_round([items[i] for i in indexes]), strict=True):
                results[index] = result
    return results


def apply_change(device_id: int, change: PresenceChange) -> AppliedChange | None:
    """Apply one change (see apply_changes)."""
    return apply_changes([(device_id, change)])[0]


def _close_broken_connection() -> None:
    try:
        connection.close()
    except DatabaseError:
        logger.debug("closing a broken database connection failed", exc_info=True)


@sync_to_async
def _apply_many(items: list[tuple[int, PresenceChange]]) -> list[AppliedChange | None]:
    """A batch in one transaction and, per round, one statement: a statement and a commit per change cost
    more than the changes themselves. A change the database refuses fails the batch; the batcher then applies
    its changes one by one, so only that one fails."""
    try:
        return apply_changes(items)
    except (OperationalError, InterfaceError):
        # Lost connection (or a deadlock with another writer): the whole batch is retried; changes that were
        # applied apply again as no-ops.
        _close_broken_connection()
        raise


async def _apply_while_unreachable(
    items: list[tuple[int, PresenceChange]],
) -> list[AppliedChange | BaseException | None]:
    backoff = Backoff(initial=0.2, cap=2.0)
    while True:
        try:
            return await _apply_many(items)
        except (OperationalError, InterfaceError) as exc:
            delay = backoff.next_delay()
            logger.warning("database unreachable while applying presence: %r; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)


_batchers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, Batcher[tuple[int, PresenceChange], AppliedChange | None]
] = weakref.WeakKeyDictionary()


async def aapply_change(device_id: int, change: PresenceChange) -> AppliedChange | None:
    """apply_change from async code: changes arriving together share one trip to the database thread."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = Batcher(_apply_while_unreachable, max_batch=200, name="presence")
    return await batcher.submit((device_id, change))
