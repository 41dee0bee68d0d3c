"""Devices for the fault tests: MQTT clients that ride out a broker outage the way a well-behaved device does,
and small helpers to time how fast a service resumes. Every wait is bounded."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable

import aiomqtt
from channels.db import database_sync_to_async
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.devices.models import Device, DeviceEvent
from fault_services import HOST
from mqtt_helpers import unique, user_property

RECONNECT_DELAY = 0.1
PUBACK_TIMEOUT = 2.0


class RetryingDevice:
    """Publishes `total` numbered QoS 1 messages (`{"seq": n}`) at `rate` per second, `window` in flight.

    A message is *accepted* once the broker acknowledged it (PUBACK). One that was not is published again
    after a reconnect, so every message is eventually accepted, some of them twice (at least once). While
    `online` is clear the device stays away from the broker (it still counts time, so it has a backlog)."""

    def __init__(self, port: int, topic: str, total: int, rate: float, window: int = 100) -> None:
        self.port = port
        self.topic = topic
        self.total = total
        self.rate = rate
        self.window = window
        self.accepted: set[int] = set()
        self.reconnects = 0
        self._next = 0
        self._unsent: deque[int] = deque()
        self.online = asyncio.Event()
        self.online.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while len(self.accepted) < self.total:
            await self.online.wait()
            try:
                async with aiomqtt.Client(
                    HOST, self.port, identifier=unique("fault-device"), protocol=aiomqtt.ProtocolVersion.V5
                ) as client:
                    client.pending_calls_threshold = self.window + 10
                    await self._stream(client, started)
            except aiomqtt.MqttError:
                self.reconnects += 1
                await asyncio.sleep(RECONNECT_DELAY)

    async def _stream(self, client: aiomqtt.Client, started: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = min(self.total, int((loop.time() - started) * self.rate) + 1)
            self._unsent.extend(range(self._next, due))
            self._next = max(self._next, due)
            if not self._unsent:
                if self._next >= self.total:
                    return
                await asyncio.sleep(0.005)
                continue
            batch = [self._unsent.popleft() for _ in range(min(self.window, len(self._unsent)))]
            results = await asyncio.gather(
                *(
                    client.publish(self.topic, json.dumps({"seq": seq}), qos=1, timeout=PUBACK_TIMEOUT)
                    for seq in batch
                ),
                return_exceptions=True,
            )
            outcomes = list(zip(batch, results, strict=True))
            failed = [seq for seq, result in outcomes if isinstance(result, Exception)]
            self.accepted.update(seq for seq, result in outcomes if result is None)
            if failed:
                self._unsent.extendleft(reversed(failed))
                raise aiomqtt.MqttError(f"{len(failed)} publishes not acknowledged")


class PersistentSubscriber:
    """A device receiving commands: persistent session (clean_start off, session expiry), QoS 1, and the same
    client id on every reconnect, so the broker keeps its messages while it or the broker is away."""

    def __init__(self, port: int, topic: str) -> None:
        self.port = port
        self.topic = topic
        self.client_id = unique("fault-device")
        self.command_ids: list[str | None] = []
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600
        while True:
            try:
                async with aiomqtt.Client(
                    HOST,
                    self.port,
                    identifier=self.client_id,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=False,
                    properties=properties,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.command_ids.append(user_property(message, "command_id"))
            except aiomqtt.MqttError:
                await asyncio.sleep(RECONNECT_DELAY)


async def wait_until(check: Callable[[], bool], within: float, what: str) -> float:
    """Poll every 10 ms until `check` holds; returns the loop time it first held. Fails after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what}")
        await asyncio.sleep(0.01)
    return loop.time()


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@database_sync_to_async
def create_device() -> Device:
    return Device.objects.create(username=unique("dev"), name="fault test")


@database_sync_to_async
def stored_sequence_numbers(device: Device) -> list[int]:
    return [p["seq"] for p in DeviceEvent.objects.filter(device=device).values_list("payload", flat=True)]


def loss_and_duplicates(sent: Iterable[object], arrived: list[object]) -> tuple[int, int]:
    """How many of `sent` never arrived, and how many arrivals were repeats (at least once allows those)."""
    return len(set(sent) - set(arrived)), len(arrived) - len(set(arrived))


def report(title: str, **figures: object) -> None:
    """The measured figures of a fault test, on stdout (shown with `pytest -s`, or with a failure)."""
    print(f"\n[{title}] " + " ".join(f"{name}={value}" for name, value in figures.items()))
