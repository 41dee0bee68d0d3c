"""State changes of commands, as conditional UPDATEs: a state only moves forward, once.

Each change names the states it may come from; a row in any other state is left alone. So a duplicate (a
reply received twice, an outcome reported again after a publisher restart) or a late message (a reply
after the command timed out) changes nothing, whichever process applies it and in whatever order.

A reply can overtake the publisher's report (`received` before `sent`): the later states accept the earlier
ones as their start, and fill the timestamps of the states skipped on the way with their own time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from apps.commands.models import Command, CommandState

ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    CommandState.SENT: (CommandState.QUEUED,),
    CommandState.DELIVERED: (CommandState.QUEUED, CommandState.SENT),
    CommandState.SUCCEEDED: (CommandState.QUEUED, CommandState.SENT, CommandState.DELIVERED),
    CommandState.FAILED: (CommandState.QUEUED, CommandState.SENT, CommandState.DELIVERED),
    CommandState.EXPIRED: (CommandState.QUEUED,),
    CommandState.TIMED_OUT: (CommandState.SENT, CommandState.DELIVERED),
}
# The timestamp column of each state, and those of the states a change may skip.
TIMESTAMP_OF = {state: f"{state}_at" for state in ALLOWED_FROM}
_SKIPPED = {
    CommandState.DELIVERED: ("sent_at",),
    CommandState.SUCCEEDED: ("sent_at", "delivered_at"),
    CommandState.FAILED: ("sent_at", "delivered_at"),
}
_ANSWERS = (CommandState.SUCCEEDED, CommandState.FAILED)


@dataclass(frozen=True)
class Transition:
    command_id: uuid.UUID
    to: str
    at: datetime
    # Set for a reply: only a command of this device moves (a device cannot answer another's command).
    device_id: int | None = None
    result: Any = None
    error: str = ""


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(field: str) -> str:
    return _quote(Command._meta.get_field(field).column)


def _apply_to(state: str, transitions: Sequence[Transition]) -> set[uuid.UUID]:
    table = _quote(Command._meta.db_table)
    pk, device = _column("id"), _column("device")
    assignments = [f"{_column('state')} = %s", f"{_column(TIMESTAMP_OF[state])} = v.at"]
    assignments += [f"{_column(f)} = COALESCE(t.{_column(f)}, v.at)" for f in _SKIPPED.get(state, ())]
    if state in _ANSWERS:
        assignments += [f"{_column('result')} = v.result", f"{_column('error')} = v.error"]
    else:  # a reason given for an end such as expired (the queue refused the command) is kept
        assignments.append(f"{_column('error')} = COALESCE(NULLIF(v.error, ''), t.{_column('error')})")
    values = ", ".join(["(%s::uuid, %s::timestamptz, %s::bigint, %s::jsonb, %s::text)"] * len(transitions))
    params: list[Any] = [state]
    for item in transitions:
        result = None if item.result is None else json.dumps(item.result)
        params += [item.command_id, item.at, item.device_id, result, item.error]
    params.append(list(ALLOWED_FROM[state]))
    sql = (
        f"UPDATE {table} AS t SET {', '.join(assignments)} "  # noqa: S608 - quoted names, values as parameters
        f"FROM (VALUES {values}) AS v(id, at, device_id, result, error) "
        f"WHERE t.{pk} = v.id AND t.{_column('state')} = ANY(%s) "
        f"AND (v.device_id IS NULL OR t.{device} = v.device_id) "
        f"RETURNING t.{pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def apply_transitions(transitions: Sequence[Transition]) -> tuple[list[bool], list[Command]]:
    """Apply what applies, one UPDATE per target state. Returns, per transition, whether it changed its
    command (a repeat of the same change within the batch: only the first), and the changed commands."""
    by_state: dict[str, dict[uuid.UUID, Transition]] = {}
    for item in transitions:
        by_state.setdefault(item.to, {}).setdefault(item.command_id, item)
    changed: set[tuple[str, uuid.UUID]] = set()
    # Forward order, so a batch holding `sent` and `succeeded` of one command ends in succeeded.
    for state in ALLOWED_FROM:
        group = by_state.get(state)
        if group:
            changed |= {(state, command_id) for command_id in _apply_to(state, list(group.values()))}
    results = []
    for item in transitions:
        key = (item.to, item.command_id)
        results.append(key in changed and by_state[item.to][item.command_id] is item)
    ids = {command_id for _, command_id in changed}
    commands = list(Command.objects.select_related("device").filter(pk__in=ids)) if ids else []
    return results, commands


def sweep_deadlines(now: datetime, batch_size: int = 1000) -> tuple[dict[str, int], list[list[Command]]]:
    """Commands past their deadline: queued -> expired, sent/delivered -> timed_out. Each batch is one short
    statement of its own (rows locked by someone else are left for the next sweep), so a large backlog never
    holds one long transaction. Returns the count per new state and the changed commands, batch by batch."""
    table = _quote(Command._meta.db_table)
    pk, state_col, deadline = _column("id"), _column("state"), _column("deadline")
    counts: dict[str, int] = {}
    batches: list[list[Command]] = []
    for to in (CommandState.EXPIRED, CommandState.TIMED_OUT):
        # The batch is picked once, in a CTE: as an `IN (subquery)` the planner may run the subquery again
        # per row, and each run picks the next rows, so one statement swept everything.
        sql = (
            f"WITH due AS MATERIALIZED (SELECT {pk} FROM {table} "  # noqa: S608 - quoted names
            f"WHERE {state_col} = ANY(%s) AND {deadline} <= %s "
            f"ORDER BY {deadline} LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {table} AS t SET {state_col} = %s, {_column(TIMESTAMP_OF[to])} = %s FROM due "
            f"WHERE t.{pk} = due.{pk} AND t.{state_col} = ANY(%s) "
            f"RETURNING t.{pk}"
        )
        allowed = list(ALLOWED_FROM[to])
        while True:
            with connection.cursor() as cursor:
                cursor.execute(sql, [allowed, now, batch_size, to, now, allowed])
                ids = [row[0] for row in cursor.fetchall()]
            if ids:
                counts[to] = counts.get(to, 0) + len(ids)
                batches.append(list(Command.objects.select_related("device").filter(pk__in=ids)))
            if len(ids) < batch_size:
                break
    return counts, batches
