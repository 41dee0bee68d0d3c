"""Helpers for the MQTT tests: unique names per test (parallel runs never collide), services run as tasks,
and a real subscriber. Every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiomqtt
import pytest
import redis
from django.conf import settings

from apps.mqtt_service.handler_service import HandlerService
from apps.mqtt_service.publish_queue import PublishQueue
from apps.mqtt_service.publisher_service import PublisherService
from apps.mqtt_service.topics import TopicScheme

WAIT = 15.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def mqtt_address() -> tuple[str, int]:
    return settings.MQTT["host"], int(settings.MQTT["port"])


def make_scheme(kinds: tuple[str, ...] = ("status", "event")) -> TopicScheme:
    """Topic prefixes and a shared group of this test only."""
    tag = uuid.uuid4().hex[:10]
    return TopicScheme(
        device_prefix=f"test_from_{tag}", command_prefix=f"test_to_{tag}", kinds=kinds, shared_group=f"g{tag}"
    )


@pytest.fixture
def publish_queue() -> Iterator[PublishQueue]:
    """A stream, group and dead-letter stream of this test only, deleted afterwards."""
    queue = PublishQueue(settings.REDIS_PUBLISH_QUEUE_URL, stream=f"test:{uuid.uuid4().hex}:publish_queue")
    yield queue
    client = redis.Redis.from_url(settings.REDIS_PUBLISH_QUEUE_URL)
    client.delete(queue.stream, queue.dead_letter_stream)
    client.close()


def stream_state(queue: PublishQueue) -> dict[str, int]:
    client = redis.Redis.from_url(queue.url)
    try:
        pending = 0
        with contextlib.suppress(redis.ResponseError):
            pending = int(client.xpending(queue.stream, queue.group)["pending"])
        return {
            "length": client.xlen(queue.stream),
            "pending": pending,
            "dead": client.xlen(queue.dead_letter_stream),
        }
    finally:
        client.close()


@contextlib.asynccontextmanager
async def _running(service: PublisherService | HandlerService) -> AsyncIterator[Any]:
    """Run a service as a task until the block ends, then stop it the way SIGTERM does (drain, exit)."""
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.connected.wait(), WAIT)
        yield service
    finally:
        service.request_stop()
        await asyncio.wait_for(task, WAIT)


def running_publisher(
    queue: PublishQueue, service_class: type[PublisherService] = PublisherService, **options: Any
) -> contextlib.AbstractAsyncContextManager[PublisherService]:
    return _running(service_class(queue, client_id=unique("test-publisher"), **options))


def running_handler(
    scheme: TopicScheme, **options: Any
) -> contextlib.AbstractAsyncContextManager[HandlerService]:
    return _running(
        HandlerService(client_id=unique("test-handler"), scheme=scheme, session_expiry=60, **options)
    )


class Subscriber:
    """A plain aiomqtt client standing in for a device: collects every message on `topic`."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.messages: list[aiomqtt.Message] = []
        self._arrived = asyncio.Event()

    async def wait_for(self, count: int, within: float = WAIT) -> list[aiomqtt.Message]:
        async def enough() -> None:
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), within)
        return self.messages

    async def _collect(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.messages.append(message)
            self._arrived.set()


@contextlib.asynccontextmanager
async def subscribed(topic: str, qos: int = 1) -> AsyncIterator[Subscriber]:
    host, port = mqtt_address()
    subscriber = Subscriber(topic)
    async with aiomqtt.Client(
        host, port, identifier=unique("test-device"), protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.subscribe(topic, qos=qos)
        task = asyncio.create_task(subscriber._collect(client))
        try:
            yield subscriber
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def device_client() -> AsyncIterator[aiomqtt.Client]:
    """A client publishing as a device would (the local test broker has no ACL)."""
    host, port = mqtt_address()
    async with aiomqtt.Client(
        host, port, identifier=unique("test-device"), protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        yield client


async def eventually(check: Callable[[], bool], within: float = WAIT) -> bool:
    """Poll `check` until it holds or `within` seconds passed; returns its last value."""
    steps = int(within / 0.05) + 1
    for _ in range(steps):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def user_property(message: aiomqtt.Message, name: str) -> str | None:
    for key, value in getattr(message.properties, "UserProperty", None) or []:
        if key == name:
            return value
    return None
