"""Simulated devices that speak the documented device contract (README, "Device contract"), one asyncio task
each, all in one process:

- connect with their own credentials and a Last Will `{"online": false, "conn": ...}` on their presence topic,
  then announce `{"online": true, "conn": ...}` there;
- publish each chosen kind at the fleet's rate, with readings that drift like real sensors;
- take commands on their command topic and answer on the reply topic (the MQTT 5 response topic when given):
  `received` at once, then `ok` or `error` after a delay, or nothing at all, as the reply behaviour says;
- on a clean stop, announce `{"online": false}` and disconnect; a lost connection is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.mqtt_service import topology
from apps.simulator.credentials import Credentials
from apps.simulator.readings import Readings

logger = logging.getLogger(__name__)

REPLY_MODES = ("ok", "error", "silent", "mixed")
# How `mixed` answers: mostly success, some failures, some commands never answered (they time out).
MIXED_WEIGHTS = {"ok": 80, "error": 10, "silent": 10}
# Command ids a device remembers to drop a redelivered command (commands are delivered at least once).
REMEMBERED_COMMANDS = 256


@dataclass(frozen=True)
class FleetConfig:
    host: str
    port: int
    kinds: tuple[str, ...]
    rate: float  # messages per second, the whole fleet together
    reply_mode: str = "mixed"
    reply_delay: float = 0.5
    connect_rate: float = 500.0  # new connections per second, so a large fleet does not stampede the broker
    keepalive: int = 30
    seed: int | None = None


@dataclass
class FleetStats:
    started: float = field(default_factory=time.monotonic)
    connected: int = 0
    messages: int = 0
    commands: int = 0
    answered_ok: int = 0
    answered_error: int = 0
    left_silent: int = 0
    errors: int = 0

    def line(self, devices: int) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{self.connected}/{devices} connected | "
            f"{self.messages} messages ({self.messages / elapsed:.1f}/s) | "
            f"{self.commands} commands: {self.answered_ok} ok, {self.answered_error} error, "
            f"{self.left_silent} silent | {self.errors} errors"
        )


async def _pause(closing: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or until the connection is closing; True when it is. A plain sleep here outlived its
    connection: once a cancellation had been swallowed (see _serve), a device of a large, slow fleet slept on
    for its whole interval (100 s for 2,000 devices at 20 messages/s) and held up the simulator's exit."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(closing.wait(), seconds)
    return closing.is_set()


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class SimulatedDevice:
    def __init__(
        self,
        credentials: Credentials,
        config: FleetConfig,
        stats: FleetStats,
        rng: random.Random,
        interval: float,
    ) -> None:
        self.credentials = credentials
        self.config = config
        self.interval = interval  # seconds between two messages of this device
        self.stats = stats
        self.rng = rng
        self.readings = Readings(rng)
        username = credentials.username
        self.presence_topic = f"{topology.DEVICE_TOPIC_PREFIX}/{username}/{topology.PRESENCE_KIND}"
        self.reply_topic = f"{topology.DEVICE_TOPIC_PREFIX}/{username}/{topology.REPLY_KIND}"
        self.command_topic = f"{topology.COMMAND_TOPIC_PREFIX}/{username}"
        self._seen_commands: OrderedDict[str, None] = OrderedDict()

    def _client(self, connection_id: str) -> aiomqtt.Client:
        will = aiomqtt.Will(self.presence_topic, _json({"online": False, "conn": connection_id}), qos=1)
        return aiomqtt.Client(
            self.config.host,
            self.config.port,
            identifier=self.credentials.username,
            username=self.credentials.username,
            password=self.credentials.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=self.config.keepalive,
            will=will,
            timeout=10,
        )

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            connection_id = secrets.token_hex(8)
            try:
                async with self._client(connection_id) as client:
                    delay = 0.5
                    await self._serve(client, connection_id, stop)
                    return
            except aiomqtt.MqttError as exc:
                self.stats.errors += 1
                logger.warning("%s: %s; reconnecting in %.1fs", self.credentials.username, exc, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, 10.0)

    async def _serve(self, client: aiomqtt.Client, connection_id: str, stop: asyncio.Event) -> None:
        await client.subscribe(self.command_topic, qos=1)
        await client.publish(self.presence_topic, _json({"online": True, "conn": connection_id}), qos=1)
        self.stats.connected += 1
        # Python 3.11's wait_for (in aiomqtt's publish) can swallow a cancellation when the PUBACK arrives at
        # the same moment: the readings loop also checks this flag, so it ends even then.
        closing = asyncio.Event()
        tasks = [
            asyncio.create_task(self._send_readings(client, closing)),
            asyncio.create_task(self._take_commands(client)),
        ]
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped:
                    task.result()  # a lost connection: raise it to the reconnect loop
            await client.publish(self.presence_topic, _json({"online": False, "conn": connection_id}), qos=1)
        finally:
            self.stats.connected -= 1
            closing.set()
            for task in (*tasks, stopped):
                task.cancel()
            await asyncio.gather(*tasks, stopped, return_exceptions=True)

    async def _send_readings(self, client: aiomqtt.Client, closing: asyncio.Event) -> None:
        interval = self.interval
        # A random phase, so the fleet's messages spread over the interval instead of arriving in bursts.
        if await _pause(closing, self.rng.uniform(0, interval)):
            return
        started = time.monotonic()
        turn = 0
        while True:
            kind = self.config.kinds[turn % len(self.config.kinds)]
            turn += 1
            topic = f"{topology.DEVICE_TOPIC_PREFIX}/{self.credentials.username}/{kind}"
            await client.publish(topic, _json(self.readings.message(kind, time.monotonic() - started)), qos=1)
            self.stats.messages += 1
            if await _pause(closing, interval * self.rng.uniform(0.9, 1.1)):
                return

    async def _take_commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                command = json.loads(message.payload)
            except (TypeError, ValueError):
                command = None
            if not isinstance(command, dict) or not isinstance(command.get("id"), str):
                # A raw mqtt_publisher.publish(...) payload: nothing to answer.
                self.stats.commands += 1
                continue
            if command["id"] in self._seen_commands:
                continue
            self._seen_commands[command["id"]] = None
            if len(self._seen_commands) > REMEMBERED_COMMANDS:
                self._seen_commands.popitem(last=False)
            self.stats.commands += 1
            asyncio.create_task(self._answer(client, message, command))  # noqa: RUF006 - short-lived

    async def _answer(
        self, client: aiomqtt.Client, message: aiomqtt.Message, command: dict[str, Any]
    ) -> None:
        mode = self.config.reply_mode
        if mode == "mixed":
            mode = self.rng.choices(list(MIXED_WEIGHTS), weights=list(MIXED_WEIGHTS.values()))[0]
        if mode == "silent":
            self.stats.left_silent += 1
            return
        topic, properties = self._reply_route(message)
        try:
            await client.publish(
                topic, _json({"id": command["id"], "status": "received"}), 1, properties=properties
            )
            await asyncio.sleep(self.config.reply_delay)
            if mode == "ok":
                result: dict[str, Any] = {"applied": command.get("name"), "params": command.get("params")}
                self.stats.answered_ok += 1
            else:
                result = {"message": f"simulated failure of {command.get('name')!r}"}
                self.stats.answered_error += 1
            reply = {"id": command["id"], "status": mode, "result": result}
            await client.publish(topic, _json(reply), 1, properties=properties)
        except aiomqtt.MqttError as exc:
            self.stats.errors += 1
            logger.warning(
                "%s: could not answer command %s: %s", self.credentials.username, command["id"], exc
            )

    def _reply_route(self, message: aiomqtt.Message) -> tuple[str, Properties | None]:
        """The reply topic (the command's MQTT 5 response topic, when given) and its correlation data."""
        incoming = message.properties
        topic = getattr(incoming, "ResponseTopic", None) or self.reply_topic
        correlation = getattr(incoming, "CorrelationData", None)
        if correlation is None:
            return topic, None
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = correlation
        return topic, properties


async def run_fleet(
    credentials: list[Credentials],
    config: FleetConfig,
    stop: asyncio.Event,
    report: Callable[[str], None],
    report_every: float = 1.0,
) -> FleetStats:
    """Run every device until `stop` is set; `report` gets a progress line every `report_every` seconds."""
    rng = random.Random(config.seed)  # noqa: S311 - simulated readings, not secrets
    stats = FleetStats()
    interval = len(credentials) / config.rate
    devices = [
        SimulatedDevice(item, config, stats, random.Random(rng.random()), interval)  # noqa: S311
        for item in credentials
    ]

    async def progress() -> None:
        while True:
            report(stats.line(len(devices)))
            await asyncio.sleep(report_every)

    reporter = asyncio.create_task(progress())
    tasks = []
    try:
        started = time.monotonic()
        for index, device in enumerate(devices):
            if stop.is_set():
                break
            tasks.append(asyncio.create_task(device.run(stop)))
            # Device i starts i / connect_rate seconds in, whatever the event loop was doing meanwhile: a
            # fixed sleep per device added every late wake-up (2,000 devices at 400/s: online after 6.8 s).
            await asyncio.sleep(max(0.0, started + (index + 1) / config.connect_rate - time.monotonic()))
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        report(stats.line(len(devices)))
    return stats
