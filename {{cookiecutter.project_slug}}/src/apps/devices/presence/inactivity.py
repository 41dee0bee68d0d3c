"""The inactivity sweep: an online device silent for longer than its timeout goes offline (reason and source
`inactivity`).

Silent means neither a message (`last_seen_at`) nor a connect (`last_connected_at`) within the timeout: the
device's `inactivity_timeout`, else settings.DEVICE_INACTIVITY_TIMEOUT; 0 turns the sweep off for the device
(or, as the setting, for every device without its own). Devices are taken in batches, each one short
statement that locks only its rows and skips rows a handler is writing (those devices are not silent), so
the sweep never holds up the handlers and two sweeps running at once take different devices.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.devices.models import Device, PresenceEvent
from apps.devices.presence.activity import INACTIVITY_REASON
from apps.devices.presence.apply import AppliedChange, PresenceChange, Source
from apps.devices.presence.push import push_presence_many

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500

_SWEEP_SQL = """
WITH due AS (
    SELECT id FROM {device}
    WHERE is_online
        AND GREATEST(last_seen_at, last_connected_at)
            < %(now)s::timestamptz
                - make_interval(secs => NULLIF(COALESCE(inactivity_timeout, %(default)s), 0))
        AND (last_disconnected_at IS NULL OR last_disconnected_at < %(now)s::timestamptz)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), swept AS (
    UPDATE {device} AS d SET is_online = false, last_disconnected_at = %(now)s::timestamptz,
        last_disconnect_reason = %(reason)s
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.username, d.owner_id, d.last_seen_at
), recorded AS (
    INSERT INTO {event} (device_id, online, at, reason, source, recorded_at)
    SELECT id, false, %(now)s::timestamptz, %(reason)s, %(source)s, %(now)s::timestamptz FROM swept
)
SELECT id, username, owner_id, last_seen_at FROM swept
"""


def _sweep_batch(now: datetime, limit: int) -> list[AppliedChange]:
    quote = connection.ops.quote_name
    sql = _SWEEP_SQL.format(device=quote(Device._meta.db_table), event=quote(PresenceEvent._meta.db_table))
    params = {
        "now": now,
        "default": settings.DEVICE_INACTIVITY_TIMEOUT,
        "limit": limit,
        "reason": INACTIVITY_REASON,
        "source": Source.INACTIVITY,
    }
    change = PresenceChange(online=False, at=now, source=Source.INACTIVITY, reason=INACTIVITY_REASON)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            AppliedChange(device_id, username, owner_id, change, True, last_seen_at)
            for device_id, username, owner_id, last_seen_at in cursor.fetchall()
        ]


def sweep_inactive_devices(now: datetime | None = None, batch_size: int = SWEEP_BATCH) -> int:
    """Mark every silent device offline and push each change; returns how many were marked."""
    now = now or timezone.now()
    total = 0
    while True:
        swept = _sweep_batch(now, batch_size)
        total += len(swept)
        failed = sum(error is not None for error in push_presence_many(swept))
        if failed:
            logger.warning("inactivity sweep: %d of %d device.presence pushes failed", failed, len(swept))
        if len(swept) < batch_size:
            break
    if total:
        logger.info("inactivity sweep: %d devices marked offline", total)
    return total
