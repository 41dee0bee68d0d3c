"""Activity: every message a device sends moves its `last_seen_at` forward, and brings a device the
inactivity sweep marked offline back online (source `activity`).

Writes are batched (one trip to the database per batch) and, per device, at most one every
SEEN_RESOLUTION seconds per handler replica: at thousands of messages per second a write per message would
cost more than storing them. `last_seen_at` is therefore exact to that resolution; a device is never silent
long enough to be swept within it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from apps.devices.models import Device, PresenceEvent
from apps.devices.presence.apply import AppliedChange, PresenceChange, Source
from apps.mqtt_service.batch import Batcher
from apps.mqtt_service.bulk_sql import batch_cursor
from apps.mqtt_service.connection import Backoff

logger = logging.getLogger(__name__)

SEEN_RESOLUTION = 1.0
INACTIVITY_REASON = "inactivity"
ACTIVITY_REASON = "activity"


@dataclass(frozen=True)
class Seen:
    device_id: int
    at: datetime


# One statement (atomic, one round trip): only devices the sweep took offline come back (a device that
# disconnected comes back through its connect); every other device's last_seen_at moves forward, unless a
# newer sighting is stored already (the handler's batch writes set it with the message).
_SEEN_SQL = """
WITH seen(id, at) AS (SELECT * FROM unnest(%b::bigint[], %b::timestamptz[])), revived AS (
    UPDATE {device} AS d SET is_online = true, last_connected_at = seen.at,
        last_seen_at = GREATEST(d.last_seen_at, seen.at)
    FROM seen
    WHERE d.id = seen.id AND NOT d.is_online AND d.last_disconnect_reason = %s
        AND d.last_disconnected_at < seen.at
    RETURNING d.id, d.username, d.owner_id, d.last_seen_at, seen.at AS at
), recorded AS (
    INSERT INTO {event} (device_id, online, at, reason, source, recorded_at)
    SELECT id, true, at, %s, %s, %s FROM revived
), touched AS (
    UPDATE {device} AS d SET last_seen_at = seen.at FROM seen
    WHERE d.id = seen.id AND (d.last_seen_at IS NULL OR d.last_seen_at < seen.at)
        AND d.id NOT IN (SELECT id FROM revived)
)
SELECT id, username, owner_id, last_seen_at, at FROM revived
"""


def _close_broken_connection() -> None:
    try:
        connection.close()
    except DatabaseError:
        logger.debug("closing a broken database connection failed", exc_info=True)


def record_seen(seen: list[Seen]) -> list[AppliedChange]:
    """Write the newest sighting of each device; returns the devices brought back online."""
    newest: dict[int, datetime] = {}
    for item in seen:
        if item.device_id not in newest or newest[item.device_id] < item.at:
            newest[item.device_id] = item.at
    if not newest:
        return []
    quote = connection.ops.quote_name
    names = {"device": quote(Device._meta.db_table), "event": quote(PresenceEvent._meta.db_table)}
    revived: list[AppliedChange] = []
    # A deadlock with another replica's batch surfaces as an OperationalError and the batch is written again
    # (every write here can be repeated).
    params = [list(newest), list(newest.values())]
    with batch_cursor() as cursor:
        cursor.execute(
            _SEEN_SQL.format(**names),
            [*params, INACTIVITY_REASON, ACTIVITY_REASON, Source.ACTIVITY, timezone.now()],
        )
        for device_id, username, owner_id, last_seen_at, at in cursor.fetchall():
            change = PresenceChange(online=True, at=at, source=Source.ACTIVITY, reason=ACTIVITY_REASON)
            revived.append(AppliedChange(device_id, username, owner_id, change, True, last_seen_at))
    return revived


@sync_to_async
def _record_seen(seen: list[Seen]) -> list[AppliedChange]:
    try:
        return record_seen(seen)
    except (OperationalError, InterfaceError):
        _close_broken_connection()
        raise


class ActivityRecorder:
    """Per event loop: remembers when each device's sighting was last written, batches the rest."""

    def __init__(self, resolution: float = SEEN_RESOLUTION) -> None:
        self.resolution = resolution
        self._written: dict[int, float] = {}
        self._batcher: Batcher[Seen, list[AppliedChange]] = Batcher(self._flush, max_batch=1000, name="seen")

    async def saw(self, device_id: int, at: datetime) -> AppliedChange | None:
        """Note a message of the device; the change when it brought the device back online."""
        now = time.monotonic()
        if now - self._written.get(device_id, -self.resolution) < self.resolution:
            return None
        self._written[device_id] = now
        if len(self._written) > 100_000:  # bound memory: forget what is past the resolution anyway
            self._written = {k: v for k, v in self._written.items() if now - v < self.resolution}
        revived = await self._batcher.submit(Seen(device_id, at))
        return next((change for change in revived if change.device_id == device_id), None)

    async def _flush(self, seen: list[Seen]) -> list[list[AppliedChange]]:
        backoff = Backoff(initial=0.2, cap=2.0)
        while True:
            try:
                revived = await _record_seen(seen)
                return [revived] * len(seen)
            except (OperationalError, InterfaceError) as exc:
                delay = backoff.next_delay()
                logger.warning(
                    "database unreachable while recording activity: %r; retrying in %.1fs", exc, delay
                )
                await asyncio.sleep(delay)


_recorders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ActivityRecorder] = (
    weakref.WeakKeyDictionary()
)


def get_recorder() -> ActivityRecorder:
    loop = asyncio.get_running_loop()
    recorder = _recorders.get(loop)
    if recorder is None:
        recorder = _recorders[loop] = ActivityRecorder()
    return recorder
