"""Helpers for the command tests: a device that answers as told, state polling, command.state pushes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from apps.commands.models import Command
from apps.mqtt_service.topics import TopicScheme
from mqtt_helpers import WAIT, mqtt_address, unique

# What the test device does with each command: acknowledge then succeed, acknowledge then fail, only
# acknowledge, or nothing at all.
ANSWER_OK, ANSWER_ERROR, ACK_ONLY, SILENT = "ok", "error", "ack", "silent"


@dataclass
class AnsweringDevice:
    username: str
    client: aiomqtt.Client
    mode: str
    # Each reply is published this many times (an at-least-once device repeating itself).
    repeat: int = 1
    received: list[aiomqtt.Message] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, within: float = WAIT) -> list[aiomqtt.Message]:
        async def enough() -> None:
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), within)
        return self.received

    async def reply(self, topic: str, body: dict[str, Any]) -> None:
        for _ in range(self.repeat):
            await self.client.publish(topic, json.dumps(body).encode(), qos=1)

    async def _serve(self) -> None:
        async for message in self.client.messages:
            self.received.append(message)
            self._arrived.set()
            if self.mode == SILENT:
                continue
            command = json.loads(message.payload)
            # The reply goes where the command says (MQTT 5 response topic), as the documented device does.
            topic = message.properties.ResponseTopic
            await self.reply(topic, {"id": command["id"], "status": "received"})
            if self.mode == ANSWER_OK:
                result = {"done": command["name"]}
                await self.reply(topic, {"id": command["id"], "status": "ok", "result": result})
            elif self.mode == ANSWER_ERROR:
                result = {"message": "no such relay", "code": 4}
                await self.reply(topic, {"id": command["id"], "status": "error", "result": result})


@contextlib.asynccontextmanager
async def answering_device(
    scheme: TopicScheme, username: str, mode: str, repeat: int = 1
) -> AsyncIterator[AnsweringDevice]:
    """A real MQTT 5 client subscribed to the device's command topic, answering per `mode`."""
    host, port = mqtt_address()
    async with aiomqtt.Client(
        host, port, identifier=unique("test-device"), protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.subscribe(scheme.command_topic(username), qos=1)
        device = AnsweringDevice(username, client, mode, repeat)
        task = asyncio.create_task(device._serve())
        try:
            yield device
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@database_sync_to_async
def _load(pk: Any) -> Command:
    return Command.objects.select_related("device").get(pk=pk)


async def wait_for_state(command: Command, state: str, within: float = WAIT) -> Command:
    """The command once it reached `state` (polled; fails after `within` seconds with the state it has)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        current = await _load(command.pk)
        if current.state == state:
            return current
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"command {command.pk} is {current.state}, expected {state}")
        await asyncio.sleep(0.05)


async def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def state_pushes(channel: str, command: Command, until: str | None, within: float = WAIT) -> list[str]:
    """The states pushed as `command.state` for `command` on `channel`: up to and including `until`, or
    (until=None) all those arriving within `within` seconds."""
    layer = get_channel_layer()
    states: list[str] = []

    async def collect() -> None:
        while until is None or until not in states:
            message = await layer.receive(channel)
            for event in message["events"]:
                payload = event["payload"]
                if payload["type"] == "command.state" and payload["command"]["id"] == str(command.pk):
                    states.append(payload["command"]["state"])

    try:
        await asyncio.wait_for(collect(), within)
    except TimeoutError:
        if until is not None:
            raise AssertionError(f"pushed {states} for command {command.pk}, never {until}") from None
    return states
