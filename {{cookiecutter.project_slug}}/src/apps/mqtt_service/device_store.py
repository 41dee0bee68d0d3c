"""Database side of the handler: device lookups (cached) and batched writes of statuses and events.
Every write also keeps the device's latest value of the message's kind (apps/devices/latest_values.py).

Every query runs in a thread (sync_to_async), never in the event loop: writes in Django's sync thread,
lookups in one of their own (see DeviceStore). One query serves a whole batch. A lost database connection
is retried with backoff until it works: the messages wait (unacknowledged, so the broker throttles)
instead of being dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from apps.devices.latest_values import LatestValue, latest_params, update_sql
from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service.batch import Batcher
from apps.mqtt_service.bulk_sql import batch_cursor
from apps.mqtt_service.connection import Backoff
from apps.mqtt_service.device_cache import DeviceCache, DeviceRef

logger = logging.getLogger(__name__)

STATUS_KIND = "status"


@dataclass(frozen=True)
class EventRow:
    device_id: int
    kind: str
    payload: dict[str, Any]
    received_at: datetime


@dataclass(frozen=True)
class StatusRow:
    device_id: int
    payload: dict[str, Any]
    received_at: datetime


def _close_broken_connection() -> None:
    # Runs in the sync thread that owns the connection; a later query opens a fresh one.
    try:
        connection.close()
    except DatabaseError:
        logger.debug("closing a broken database connection failed", exc_info=True)


def _fetch_devices_sql(where: str) -> str:
    meta = Device._meta
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(meta.get_field(name).column) for name in ("username", "id", "owner", "is_active")
    )
    return f"SELECT {columns} FROM {quote(meta.db_table)} {where}"  # noqa: S608 - quoted names


def _fetch_refs(sql: str, params: list[Any]) -> dict[str, DeviceRef]:
    try:
        with batch_cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    except (OperationalError, InterfaceError):
        _close_broken_connection()
        raise
    return {username: DeviceRef(pk, owner_id, is_active) for username, pk, owner_id, is_active in rows}


def _fetch_devices(usernames: list[str]) -> dict[str, DeviceRef]:
    username = connection.ops.quote_name(Device._meta.get_field("username").column)
    return _fetch_refs(_fetch_devices_sql(f"WHERE {username} = ANY(%b::text[])"), [usernames])


def _fetch_recent_devices(limit: int) -> dict[str, DeviceRef]:
    seen = connection.ops.quote_name(Device._meta.get_field("last_seen_at").column)
    return _fetch_refs(_fetch_devices_sql(f"ORDER BY {seen} DESC NULLS LAST LIMIT %b"), [limit])


def _insert_events_sql() -> str:
    meta = DeviceEvent._meta
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(meta.get_field(name).column) for name in ("device", "kind", "payload", "received_at")
    )
    # One statement, one round trip: the devices' latest values (a data-modifying WITH runs once, whether
    # or not its result is read) and the history rows, atomically.
    return (
        f"WITH latest AS ({update_sql()}) "  # noqa: S608 - quoted names
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "
        "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::jsonb[], %b::timestamptz[])"
    )


@sync_to_async
def _insert_events(rows: list[EventRow]) -> list[None]:
    # Arrays, not a row of literals each: the ORM's bulk_create built a model instance and rendered four
    # literals per row, and was the handler's largest cost at full ingest. A row the database refuses fails
    # the statement, latest values included; the batcher then stores the rows one by one, so only that row
    # fails.
    params = [
        *latest_params(rows),
        [row.device_id for row in rows],
        [row.kind for row in rows],
        [json.dumps(row.payload) for row in rows],
        [row.received_at for row in rows],
    ]
    try:
        with batch_cursor() as cursor:
            cursor.execute(_insert_events_sql(), params)
    except (OperationalError, InterfaceError):
        _close_broken_connection()
        raise
    return [None] * len(rows)


@sync_to_async
def _update_statuses(rows: list[StatusRow]) -> list[None]:
    # One UPDATE per batch: the newest status of each device becomes its last_status and its latest value of
    # the status kind. Neither moves back: a late, older status leaves both alone. A status the database
    # refuses fails the statement; the batcher then applies the statuses one by one, so only that one fails.
    statuses = [LatestValue(row.device_id, STATUS_KIND, row.payload, row.received_at) for row in rows]
    try:
        with batch_cursor() as cursor:
            cursor.execute(update_sql(with_status=True), latest_params(statuses, with_status=True))
    except (OperationalError, InterfaceError):
        _close_broken_connection()
        raise
    return [None] * len(rows)


async def _retry_while_unreachable(what: str, call: Any, *args: Any) -> Any:
    backoff = Backoff(initial=0.2, cap=2.0)
    while True:
        try:
            return await call(*args)
        except (OperationalError, InterfaceError) as exc:
            delay = backoff.next_delay()
            logger.warning("database unreachable during %s: %r; retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)


class DeviceStore:
    """Per event loop: the device cache (device_cache.py) and the batchers of events and statuses.

    Device fetches run in a thread (and database connection) of their own: a message waits for its device
    before it can be stored, and a fetch queued behind the writes of other messages doubled the time a
    message of a device missing from the cache took. Writes share Django's sync thread, a batch at a time."""

    def __init__(self, cache_ttl: float = 10.0, negative_ttl: float = 5.0) -> None:
        self._lookup_thread = ThreadPoolExecutor(1, thread_name_prefix="device-lookups")

        def in_lookup_thread(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
            return sync_to_async(function, thread_sensitive=False, executor=self._lookup_thread)

        fetch = in_lookup_thread(_fetch_devices)
        self.devices = DeviceCache(
            # A lookup waits out a database outage (its message waits, unacknowledged); warming does not.
            lambda usernames: _retry_while_unreachable("device lookup", fetch, usernames),
            in_lookup_thread(_fetch_recent_devices),
            ttl=cache_ttl,
            negative_ttl=negative_ttl,
        )
        self._events: Batcher[EventRow, None] = Batcher(self._flush_events, max_batch=1000, name="events")
        self._statuses: Batcher[StatusRow, None] = Batcher(
            self._flush_statuses, max_batch=1000, name="statuses"
        )

    async def lookup(self, username: str) -> DeviceRef | None:
        return await self.devices.lookup(username)

    async def record_event(self, row: EventRow) -> None:
        await self._events.submit(row)

    async def record_status(self, row: StatusRow) -> None:
        await self._statuses.submit(row)

    async def _flush_events(self, rows: list[EventRow]) -> list[None]:
        return await _retry_while_unreachable("event insert", _insert_events, rows)

    async def _flush_statuses(self, rows: list[StatusRow]) -> list[None]:
        return await _retry_while_unreachable("status update", _update_statuses, rows)

    async def close(self) -> None:
        await self.devices.close()
        for batcher in (self._events, self._statuses):
            await batcher.close()
        # Each connection belongs to the thread its queries ran in; close it there.
        await sync_to_async(_close_broken_connection)()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._lookup_thread, _close_broken_connection)
        self._lookup_thread.shutdown(wait=False)
        if _stores.get(loop) is self:  # a later get_store() in this loop starts afresh
            del _stores[loop]


_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeviceStore] = weakref.WeakKeyDictionary()


def get_store() -> DeviceStore:
    """The store of the running event loop (batchers and futures cannot cross loops)."""
    loop = asyncio.get_running_loop()
    store = _stores.get(loop)
    if store is None:
        store = DeviceStore()
        _stores[loop] = store
    return store
