"""The handler's device cache: warmed at start, entries in use refreshed in the background (never a miss),
changes seen within the TTL, unused and unknown entries forgotten."""

import asyncio
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.devices.models import Device
from apps.mqtt_service.device_cache import DeviceCache, DeviceRef
from apps.mqtt_service.device_store import DeviceStore
from mqtt_helpers import unique

TTL = 0.2
FETCH_SECONDS = 0.05  # a miss waits at least this long


class FakeDatabase:
    def __init__(self, devices: dict[str, DeviceRef]) -> None:
        self.devices = devices
        self.fetched: list[list[str]] = []

    async def fetch(self, usernames: list[str]) -> dict[str, DeviceRef]:
        self.fetched.append(list(usernames))
        await asyncio.sleep(FETCH_SECONDS)
        return {name: self.devices[name] for name in usernames if name in self.devices}

    async def recent(self, limit: int) -> dict[str, DeviceRef]:
        return dict(list(self.devices.items())[:limit])


def cache_of(database: FakeDatabase, **options: float) -> DeviceCache:
    return DeviceCache(database.fetch, database.recent, ttl=TTL, negative_ttl=TTL, **options)


async def timed_lookup(cache: DeviceCache, username: str) -> tuple[DeviceRef | None, float]:
    started = time.monotonic()
    found = await cache.lookup(username)
    return found, time.monotonic() - started


async def test_warmed_devices_are_found_without_a_fetch() -> None:
    database = FakeDatabase({"a": DeviceRef(1, 7, True), "b": DeviceRef(2, None, True)})
    cache = cache_of(database)
    assert await cache.warm() == 2
    assert await cache.lookup("a") == DeviceRef(1, 7, True)
    assert await cache.lookup("b") == DeviceRef(2, None, True)
    assert database.fetched == []
    await cache.close()


async def test_a_device_in_use_never_waits_and_its_changes_arrive_within_the_ttl() -> None:
    database = FakeDatabase({"a": DeviceRef(1, 7, True)})
    cache = cache_of(database)
    await cache.warm()
    slowest = 0.0
    for _ in range(25):  # 5 TTLs
        found, took = await timed_lookup(cache, "a")
        assert found is not None and found.is_active
        slowest = max(slowest, took)
        await asyncio.sleep(TTL / 5)
    assert slowest < FETCH_SECONDS / 2, "a lookup of a device in use waited for a fetch"
    assert database.fetched, "entries in use are fetched again in the background"
    database.devices["a"] = DeviceRef(1, 7, False)  # deactivated
    deadline = time.monotonic() + TTL + FETCH_SECONDS * 2
    while (await cache.lookup("a")).is_active:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the change was not seen within the TTL"
        await asyncio.sleep(0.01)
    await cache.close()


async def test_unused_and_unknown_usernames_are_fetched_again_after_their_ttl() -> None:
    database = FakeDatabase({"b": DeviceRef(2, None, True)})
    cache = cache_of(database)
    await cache.warm()
    assert await cache.lookup("ghost") is None
    assert await cache.lookup("ghost") is None
    assert database.fetched == [["ghost"]]  # remembered as unknown
    await asyncio.sleep(TTL * 1.5)
    database.fetched.clear()
    assert (await timed_lookup(cache, "b"))[1] >= FETCH_SECONDS * 0.9  # unused: dropped out, fetched again
    assert await cache.lookup("ghost") is None
    assert sorted(database.fetched) == [["b"], ["ghost"]]
    await cache.close()


async def test_warming_takes_the_most_recent_devices_up_to_its_limit() -> None:
    database = FakeDatabase({f"d{index}": DeviceRef(index, None, True) for index in range(10)})
    cache = cache_of(database, warm_limit=3)
    assert await cache.warm() == 3
    await cache.close()


@pytest.mark.django_db(transaction=True)
async def test_the_store_warms_with_the_most_recently_seen_devices() -> None:
    now = timezone.now()
    seen = {unique("old"): now - timedelta(hours=1), unique("new"): now, unique("never"): None}
    for username, last_seen in seen.items():
        await Device.objects.acreate(username=username, last_seen_at=last_seen)
    store = DeviceStore()
    store.devices.warm_limit = 2
    try:
        assert await store.devices.warm() == 2
        older, newest, _never = seen
        assert set(store.devices._entries) == {newest, older}  # a device never seen comes last
    finally:
        await store.close()
