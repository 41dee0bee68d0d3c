"""The simulator's timing: devices start at --connect-rate, on schedule even when the event loop runs late,
and a device stops sending as soon as its connection closes, however long its interval."""

import asyncio
import random
import time
from typing import Any

import pytest

from apps.simulator import fleet
from apps.simulator.credentials import Credentials
from apps.simulator.fleet import FleetConfig, FleetStats, SimulatedDevice

DEVICES = 200
RATE = 400.0  # devices per second: 0.5 s for all of them
SLACK = 0.25  # a busy machine's late wake-ups


async def start_times(monkeypatch: pytest.MonkeyPatch, hold_up: float) -> list[float]:
    """When each device started; the tenth blocks the event loop for `hold_up` seconds."""
    started: list[float] = []
    all_started = asyncio.Event()

    async def run(self: Any, stop: asyncio.Event) -> None:
        started.append(time.monotonic())
        if len(started) == 10:
            time.sleep(hold_up)  # noqa: ASYNC251 - the point: an event loop held up
        if len(started) == DEVICES:
            all_started.set()
        await stop.wait()

    monkeypatch.setattr(fleet.SimulatedDevice, "run", run)
    config = fleet.FleetConfig(host="127.0.0.1", port=1, kinds=("event",), rate=1.0, connect_rate=RATE)
    credentials = [Credentials(f"pace-{index}", "x") for index in range(DEVICES)]
    stop = asyncio.Event()
    running = asyncio.create_task(fleet.run_fleet(credentials, config, stop, lambda line: None))
    await asyncio.wait_for(all_started.wait(), 10)
    stop.set()
    await running
    assert len(started) == DEVICES
    return started


async def test_devices_start_at_the_connect_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    started = await start_times(monkeypatch, hold_up=0.0)
    assert DEVICES / RATE * 0.8 < started[-1] - started[0] < DEVICES / RATE + SLACK


async def test_time_lost_by_a_busy_loop_is_made_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed pause per device would add the half second lost here to the schedule.
    started = await start_times(monkeypatch, hold_up=0.5)
    assert started[-1] - started[0] < DEVICES / RATE + SLACK


class FirstOfRange:
    """Stands in for the device's random numbers: no phase, the shortest interval."""

    def uniform(self, low: float, high: float) -> float:
        return low


class InstantClient:
    def __init__(self) -> None:
        self.published = asyncio.Event()

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.published.set()


async def test_a_device_with_a_long_interval_stops_sending_when_its_connection_closes() -> None:
    config = FleetConfig(host="127.0.0.1", port=1, kinds=("event",), rate=20.0)
    # 2,000 devices at 20 messages/s: 100 s between two messages of one device.
    device = SimulatedDevice(
        Credentials("slow-1", "x"), config, FleetStats(), random.Random(1), interval=100.0
    )
    device.rng = FirstOfRange()  # type: ignore[assignment]
    client, closing = InstantClient(), asyncio.Event()
    sending = asyncio.create_task(device._send_readings(client, closing))  # type: ignore[arg-type]
    await asyncio.wait_for(client.published.wait(), 5)
    closing.set()  # no cancellation: the closing flag alone must end it
    await asyncio.wait_for(sending, 2)
