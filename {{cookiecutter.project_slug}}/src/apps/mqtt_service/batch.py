"""Group commit: many coroutines submit one item each; one flush handles everything submitted meanwhile.

No timer is involved: while a flush is running, new items pile up and go out together in the next one,
so batches grow with load and a lone message is written at once (low latency when idle, few round trips
when busy).

A batch is an optimisation, never a shared fate. When a flush of several items raises, or reports an item
as failed, each failed item is flushed again on its own: an item the database or the channel layer refuses
fails alone and its neighbours go through. Every user of Batcher (built-in or a project's own handler) gets
this without writing it. Only an `Unavailable` error (the dependency itself is down, so every item would
fail alike) is not retried item by item: the flush function waits out outages itself or reports them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from apps.mqtt_service.log_limit import LogLimiter

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)

# flush(items) -> one result per item, in order; an Exception instance fails only that item.
FlushFn = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Unavailable(Exception):
    """The flush could not reach its dependency: retrying items one by one cannot help."""


class Batcher(Generic[T, R]):
    def __init__(
        self,
        flush: FlushFn[T, R],
        *,
        max_batch: int = 500,
        name: str = "batch",
        linger: float = 0.0,
        linger_below: int = 0,
    ) -> None:
        """`linger`: while fewer than `linger_below` items are pending, the flush waits until the oldest of
        them is `linger` seconds old, so items arriving meanwhile go out in the same, larger flush (for
        flushes with a high fixed cost). An item that already waited that long for a running flush is not
        held again: no item waits more than `linger` plus one flush in progress."""
        self._flush = flush
        self.max_batch = max_batch
        self.name = name
        self.linger = linger
        self.linger_below = linger_below
        # (item, its submitter's future, when it was submitted: time.monotonic())
        self._pending: list[tuple[T, asyncio.Future[R], float]] = []
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._log = LogLimiter(logger)

    async def submit(self, item: T) -> R:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"batcher-{self.name}")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future, time.monotonic()))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # One loop turn lets every coroutine that is ready right now add its item to this batch.
            await asyncio.sleep(0)
            self._wake.clear()
            while self._pending:
                await self._linger()
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                await self._flush_batch(batch)

    async def _linger(self) -> None:
        if len(self._pending) >= self.linger_below:
            return
        wait = self._pending[0][2] + self.linger - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[R], float]]) -> None:
        items = [item for item, _, _ in batch]
        results = await self._flush_guarded(items)
        if len(items) > 1:
            await self._retry_failed_alone(items, results)
        for (_, future, _), result in zip(batch, results, strict=True):
            if future.done():  # the submitter was cancelled
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _flush_guarded(self, items: list[T]) -> list[Any]:
        """The flush's results; a flush that raised fails each of its items with that error."""
        try:
            results = list(await self._flush(items))
        except Exception as exc:
            return [exc] * len(items)
        if len(results) != len(items):
            error = RuntimeError(f"{self.name}: flush returned {len(results)} results for {len(items)} items")
            return [error] * len(items)
        return results

    async def _retry_failed_alone(self, items: list[T], results: list[Any]) -> None:
        failed = [
            index
            for index, result in enumerate(results)
            if isinstance(result, Exception) and not isinstance(result, Unavailable)
        ]
        if not failed:
            return
        self._log.warn(
            "split",
            "%s: a flush of %d items failed for %d of them (%r); flushing those one by one",
            self.name,
            len(items),
            len(failed),
            results[failed[0]],
        )
        for index in failed:
            [results[index]] = await self._flush_guarded([items[index]])

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
