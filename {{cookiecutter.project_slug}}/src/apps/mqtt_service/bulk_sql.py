"""A cursor for the handler's batch statements: parameters bound by the server in binary, statements prepared.

Django's psycopg cursors bind parameters on the client: a batch of 1,000 messages passed as arrays was quoted
into the SQL text in Python, value by value, and Postgres parsed and planned that text again each time. At
full ingest with many devices that was the handler's largest cost after MQTT itself. The batch statements
therefore have a fixed text (arrays with `unnest`, never a VALUES list whose length varies) and take their
arrays as binary parameters (`%b`: psycopg's C dumpers, about a tenth of the CPU of the text format), and
each statement is prepared once per connection.

Prepared statements live in the database session: behind a pooler in transaction mode (PgBouncer before
1.21, or without `max_prepared_statements`) set `POSTGRES_PREPARE_BATCH_STATEMENTS=False`.

Runs in the sync thread that owns Django's connection (inside sync_to_async), and inside any
`transaction.atomic()` block open there: it is the same database session.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

_NEVER_BY_COUNT = 2**31 - 1


class BatchCursor:
    """psycopg's server-binding cursor; `execute` prepares the statement unless that is switched off."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor
        self._prepare = settings.POSTGRES_PREPARE_BATCH_STATEMENTS

    def execute(self, query: str, params: Sequence[Any]) -> None:
        self._cursor.execute(query, params, prepare=self._prepare)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


@contextmanager
def batch_cursor() -> Iterator[BatchCursor]:
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None and settings.POSTGRES_PREPARE_BATCH_STATEMENTS:
        # Django turns psycopg's preparing off for the whole connection (prepare_threshold None), and psycopg
        # then ignores prepare=True too. A threshold no statement reaches turns explicit preparing back on and
        # nothing else: Django's own cursors bind on the client and are never prepared.
        raw.prepare_threshold = _NEVER_BY_COUNT
    # psycopg.Cursor, not the connection's cursor_factory (Django's client-binding cursor). Errors surface as
    # Django's (OperationalError, IntegrityError, ...), as from any Django cursor, so callers catch one kind.
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        yield BatchCursor(cursor)
