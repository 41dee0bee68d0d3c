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

from apps.mqtt_service import topology
from apps.mqtt_service.handler_service import HandlerService
from apps.mqtt_service.handlers import STATUS_KIND
from apps.mqtt_service.publish_queue import PublishQueue
from apps.mqtt_service.publisher_service import PublisherService
from apps.mqtt_service.topics import TopicScheme

WAIT = 15.0
# The answered kinds: tests send what the generated project really subscribes to, whatever was answered.
KINDS: tuple[str, ...] = tuple(topology.DEVICE_MESSAGE_KINDS)
# Tests that count stored messages need a kind kept as history; a project answered with `status` alone has
# none, so their schemes add this one (every subscribed kind gets a built-in handler).
EXTRA_HISTORY_KIND = "test_history"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def mqtt_address() -> tuple[str, int]:
    return settings.MQTT["host"], int(settings.MQTT["port"])


def make_scheme(kinds: tuple[str, ...] = KINDS) -> TopicScheme:
    """Topic prefixes and a shared group of this test only; the answered kinds unless told otherwise."""
    tag = uuid.uuid4().hex[:10]
    return TopicScheme(
        device_prefix=f"test_from_{tag}", command_prefix=f"test_to_{tag}", kinds=kinds, shared_group=f"g{tag}"
    )


def history_kinds(kinds: tuple[str, ...] = KINDS) -> tuple[str, ...]:
    """The kinds stored as history rows (every kind but status)."""
    return tuple(kind for kind in kinds if kind != STATUS_KIND)


def answered_history_kind() -> str:
    """An answered kind stored as history, for tests that run the service as `manage.py` does (with the
    answered topics) and count stored rows. A project answered with `status` alone keeps no history rows:
    there they are skipped (the in-process tests prove the same guarantees with an extra kind)."""
    kinds = history_kinds()
    if not kinds:
        pytest.skip(f"no answered kind is stored as history (kinds: {', '.join(KINDS)})")
    return kinds[0]


def history_scheme() -> tuple[TopicScheme, str]:
    """A scheme of this test only and a kind of it stored as history: an answered one when there is one."""
    kinds = KINDS if history_kinds() else (*KINDS, EXTRA_HISTORY_KIND)
    return make_scheme(kinds), history_kinds(kinds)[0]


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
    queue: PublishQueue,
    scheme: TopicScheme,
    service_class: type[PublisherService] = PublisherService,
    **options: Any,
) -> contextlib.AbstractAsyncContextManager[PublisherService]:
    """A publisher service for the commands of `scheme` (it refuses any other command topic)."""
    return _running(service_class(queue, client_id=unique("test-publisher"), scheme=scheme, **options))


def running_handler(
    scheme: TopicScheme, client_id: str | None = None, **options: Any
) -> contextlib.AbstractAsyncContextManager[HandlerService]:
    client_id = client_id or unique("test-handler")
    return _running(HandlerService(client_id=client_id, scheme=scheme, session_expiry=60, **options))


async def leave_stale_subscription(scheme: TopicScheme, kind: str, client_id: str) -> None:
    """Give the persistent session `client_id` a subscription to `kind` too, as a replica started before the
    answered kinds changed would have left it: the broker keeps delivering that kind to the session."""
    stale = TopicScheme(
        scheme.device_prefix, scheme.command_prefix, (*scheme.kinds, kind), scheme.shared_group
    )
    async with running_handler(stale, client_id=client_id):
        pass


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
