"""Async side of state changes (the handler's replies, the publisher's outcomes): batched, then pushed.

Changes submitted while a batch is being written go out together in the next one (apps.mqtt_service.batch),
so a burst of replies costs a few UPDATEs, not one each. The database work runs in Django's sync thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from apps.commands.events import apush_states
from apps.commands.transitions import Transition, apply_transitions
from apps.mqtt_service.batch import Batcher
from apps.mqtt_service.connection import Backoff

logger = logging.getLogger(__name__)


def _apply_or_reset(transitions: list[Transition]) -> tuple[list[bool], list]:
    try:
        return apply_transitions(transitions)
    except (OperationalError, InterfaceError):
        # A broken connection stays broken: close it here, in the thread that owns it; the retry reopens.
        try:
            connection.close()
        except DatabaseError:
            logger.debug("closing a broken database connection failed", exc_info=True)
        raise


_apply = sync_to_async(_apply_or_reset)


class TransitionRecorder:
    """One per event loop and purpose. `patience`: seconds to keep retrying while the database is
    unreachable before failing the batch (None: until it is back)."""

    def __init__(self, name: str, patience: float | None) -> None:
        self.patience = patience
        self._batcher: Batcher[Transition, bool] = Batcher(self._flush, max_batch=1000, name=name)

    async def record(self, transition: Transition) -> bool:
        """Apply it (with whatever else is pending); True when it changed the command."""
        return await self._batcher.submit(transition)

    async def _flush(self, transitions: list[Transition]) -> list[bool]:
        backoff = Backoff(initial=0.2, cap=2.0)
        give_up = None if self.patience is None else time.monotonic() + self.patience
        while True:
            try:
                results, changed = await _apply(transitions)
                break
            except (OperationalError, InterfaceError) as exc:
                if give_up is not None and time.monotonic() >= give_up:
                    raise
                delay = backoff.next_delay()
                logger.warning("database unreachable for command states: %r; retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        await apush_states(changed)
        return results


_recorders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, TransitionRecorder]] = (
    weakref.WeakKeyDictionary()
)


def recorder(name: str, patience: float | None) -> TransitionRecorder:
    """The recorder `name` of the running event loop (batchers and futures cannot cross loops)."""
    per_loop = _recorders.setdefault(asyncio.get_running_loop(), {})
    found = per_loop.get(name)
    if found is None:
        found = per_loop[name] = TransitionRecorder(name, patience)
    return found
