"""A lingering batcher (the WebSocket pushes') trades a bounded wait for larger flushes: a small batch waits
for its oldest item to be `linger` old and takes in whatever arrives meanwhile, and an item that already
waited that long for a running flush goes out at once."""

import asyncio
import time

from apps.mqtt_service.batch import Batcher

LINGER = 0.3
FLUSH_SECONDS = 0.5


class TimedFlush:
    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[tuple[float, float, list[str]]] = []  # (started, ended, items)

    async def __call__(self, items: list[str]) -> list[str]:
        started = time.monotonic()
        await asyncio.sleep(self.seconds)
        self.calls.append((started, time.monotonic(), list(items)))
        return items


async def test_items_arriving_while_a_small_batch_lingers_join_its_flush() -> None:
    flush = TimedFlush()
    batcher = Batcher(flush, name="test", linger=LINGER, linger_below=100)
    submitted = time.monotonic()
    first = asyncio.create_task(batcher.submit("a"))
    await asyncio.sleep(LINGER / 6)
    second = asyncio.create_task(batcher.submit("b"))
    assert await asyncio.gather(first, second) == ["a", "b"]
    await batcher.close()
    [(started, _, items)] = flush.calls
    assert items == ["a", "b"]
    assert started - submitted >= LINGER * 0.9, "the small batch did not linger"


async def test_an_item_that_waited_for_a_running_flush_is_not_held_again() -> None:
    flush = TimedFlush(FLUSH_SECONDS)
    batcher = Batcher(flush, name="test", linger=LINGER, linger_below=100)
    first = asyncio.create_task(batcher.submit("a"))
    await asyncio.sleep(LINGER + FLUSH_SECONDS / 4)  # "a" is being flushed now
    second = asyncio.create_task(batcher.submit("b"))
    await asyncio.gather(first, second)
    await batcher.close()
    [(_, first_ended, first_items), (second_started, _, second_items)] = flush.calls
    assert (first_items, second_items) == (["a"], ["b"])
    # "b" is older than the linger when the first flush ends: it goes out then, not a linger later.
    assert second_started - first_ended < LINGER / 2


async def test_a_full_batch_does_not_linger() -> None:
    flush = TimedFlush()
    batcher = Batcher(flush, name="test", linger=LINGER, linger_below=3)
    submitted = time.monotonic()
    await asyncio.gather(*(batcher.submit(item) for item in "abc"))
    await batcher.close()
    [(started, _, items)] = flush.calls
    assert items == ["a", "b", "c"]
    assert started - submitted < LINGER / 2
