"""The latest value of each message kind on the device row (`Device.latest`), so a fleet list is one query.

`Device.latest` is `{"<kind>": {"data": {...}, "at": "<ISO 8601>", "ts": <epoch milliseconds>}}`. One UPDATE
serves a whole batch of messages, and a value only moves forward in time: a message older than the stored
value of its kind (late, or replayed by another handler replica) changes nothing. Applying the same batch
twice gives the same row, so a batch retried after a failure is harmless. The same UPDATE moves the device's
`last_seen_at` forward to its newest message of the batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from django.db import connection

from apps.devices.models import Device

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMPTY_OBJECT = "'{}'::jsonb"
_MILLISECOND = timedelta(milliseconds=1)


class Message(Protocol):
    """What a latest value is made of (the handler's rows have these attributes: no copy per message)."""

    @property
    def device_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def received_at(self) -> datetime: ...


@dataclass(frozen=True)
class LatestValue:
    device_id: int
    kind: str
    payload: dict[str, Any]
    received_at: datetime


def latest_entry(payload: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    """What `Device.latest[kind]` holds for a message."""
    return {
        "data": payload,
        "at": received_at.isoformat(),
        "ts": (received_at - _EPOCH) // _MILLISECOND,
    }


def newest_per_device(values: Iterable[Message]) -> dict[int, dict[str, Message]]:
    """The newest value of each kind of each device; of two equally old ones, the later in the batch."""
    newest: dict[int, dict[str, Message]] = {}
    for value in values:
        kinds = newest.setdefault(value.device_id, {})
        current = kinds.get(value.kind)
        if current is None or value.received_at >= current.received_at:
            kinds[value.kind] = value
    return newest


def update_sql(*, with_status: bool = False) -> str:
    """The UPDATE applying one batch; its parameters are `latest_params(...)`, in order. With `with_status`,
    the batch holds statuses (one kind) and each device's newest one also becomes its `last_status` when it
    is newer than the stored status, by the same rule as its latest value: one row version for both columns.
    (Not by `last_seen_at`, which other kinds' messages move: a status stored after a later event would have
    been dropped.)"""
    meta = Device._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    pk = quote(meta.pk.column)
    latest = quote(meta.get_field("latest").column)
    seen = quote(meta.get_field("last_seen_at").column)
    # A stored entry is kept only when it has a numeric "ts" newer than the incoming one: an entry written by
    # hand without "ts" (or with a bad one) is replaced rather than blocking its kind for ever.
    newer = (
        f"(SELECT COALESCE(jsonb_object_agg(n.key, n.value), {_EMPTY_OBJECT}) "  # noqa: S608 - quoted names
        "FROM jsonb_each(v.entries) AS n "
        f"WHERE jsonb_typeof(d.{latest} -> n.key -> 'ts') IS DISTINCT FROM 'number' "
        f"OR (d.{latest} -> n.key -> 'ts') <= (n.value -> 'ts'))"
    )
    current = f"CASE WHEN jsonb_typeof(d.{latest}) = 'object' THEN d.{latest} ELSE {_EMPTY_OBJECT} END"
    # Both the SET and the WHERE read d, the row as locked: with another batch updating the same device
    # concurrently, they see its committed value (READ COMMITTED re-checks the updated row), so the newer
    # value wins whichever batch commits last. The WHERE skips the write when nothing in the batch is newer.
    # last_seen_at moves forward in the same row version: the activity recorder's own update of the row
    # (apps/devices/presence/activity.py) then finds nothing newer to write.
    assignments = [f"{latest} = {current} || {newer}", f"{seen} = GREATEST(d.{seen}, v.seen)"]
    changed = f"{newer} <> {_EMPTY_OBJECT}"
    columns = "%b::bigint[], %b::jsonb[], %b::timestamptz[]"
    if with_status:
        status = quote(meta.get_field("last_status").column)
        assignments.insert(0, f"{status} = CASE WHEN {changed} THEN v.status ELSE d.{status} END")
        columns += ", %b::jsonb[]"
    return (
        f"UPDATE {table} AS d SET {', '.join(assignments)} "  # noqa: S608 - quoted names
        f"FROM unnest({columns}) AS v(id, entries, seen{', status' if with_status else ''}) "
        f"WHERE d.{pk} = v.id AND {changed}"
    )


def latest_params(values: Iterable[Message], *, with_status: bool = False) -> list[list[Any]]:
    """The parameters of `update_sql` for a batch of messages; none when the batch is empty."""
    newest = newest_per_device(values)
    # Devices in id order: two batches touching the same devices lock their rows in the same order.
    device_ids = sorted(newest)
    entries = [
        json.dumps({kind: latest_entry(v.payload, v.received_at) for kind, v in newest[device_id].items()})
        for device_id in device_ids
    ]
    newest_of_device = [max(newest[device_id].values(), key=_received_at) for device_id in device_ids]
    params = [device_ids, entries, [value.received_at for value in newest_of_device]]
    if with_status:
        params.append([json.dumps(value.payload) for value in newest_of_device])
    return params


def _received_at(value: Message) -> datetime:
    return value.received_at
