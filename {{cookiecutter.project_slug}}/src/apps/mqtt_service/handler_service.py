"""Handler replica: receive device messages through the shared subscription and hand them to handlers.

Durability: the session is persistent (clean_start=False plus a session expiry) and QoS 1/2 messages are
acknowledged manually, in the order received, only after their handler finished (stored in the database).
A replica killed with SIGKILL therefore loses nothing the broker sent it: unacknowledged messages stay in its
session and are delivered again when it reconnects (at least once: a few may be stored twice). QoS 0 messages
carry no such promise. The broker never sends more than `receive_maximum` unacknowledged messages, so a slow
database throttles the broker instead of filling memory.

Input: a message is handed to its kind's handler only when its topic names a device and its payload passes
payloads.py (a JSON object the database and the channel layer accept); a handler may still refuse a message
it cannot take by raising PayloadRefusedError with its own reason. Anything else, and any message replayed
with the retain flag, is counted under its reason, logged (rate-limited) and acknowledged: it cannot cost
another device's message.

The broker's client events (`<MQTT_PRESENCE_EVENT_PREFIX>/<node>/clients/<clientid>/connected|disconnected`,
EMQX's `$SYS/brokers` by default) are subscribed to, through the same shared group, when an app registered a
`@client_event_handler` (apps/devices does, for presence); they pass the same payload checks.

aiomqtt 2.5 has no public switch for manual acknowledgement; paho-mqtt (its engine) has one, reached through
`mqtt_internals` (enable_manual_acks, acknowledger). aiomqtt is pinned below 3 for this reason too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import redis
import redis.asyncio as aredis
from django.db import DatabaseError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.mqtt_service import mqtt_internals, topology
from apps.mqtt_service.connection import Backoff, ClientIdCollisionWatch, client_kwargs
from apps.mqtt_service.device_store import get_store
from apps.mqtt_service.handlers import PushFailedError
from apps.mqtt_service.log_limit import LogLimiter
from apps.mqtt_service.metrics import Metrics
from apps.mqtt_service.payloads import MAX_PAYLOAD_BYTES, PayloadRefusedError, parse_payload
from apps.mqtt_service.router import (
    ClientEvent,
    ClientEventHandler,
    DeviceMessage,
    Handler,
    describe,
    get_client_event_handler,
    load_handlers,
    message_observers,
    registered_kinds,
)
from apps.mqtt_service.topics import DEFAULT_SCHEME, TopicScheme

logger = logging.getLogger(__name__)


class AckTracker:
    """Acknowledges QoS 1/2 messages of one connection in the order they arrived, once each is done."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._ack = mqtt_internals.acknowledger(client)
        self._order: deque[tuple[int, int, int]] = deque()
        self._done: set[int] = set()
        self._seq = itertools.count()
        self.open = True

    def track(self, message: aiomqtt.Message) -> int | None:
        if message.qos == 0:
            return None
        token = next(self._seq)
        self._order.append((token, message.mid, message.qos))
        return token

    def done(self, token: int | None) -> None:
        if token is None:
            return
        self._done.add(token)
        while self._order and self._order[0][0] in self._done:
            head, mid, qos = self._order.popleft()
            self._done.discard(head)
            # A message from a connection that is gone cannot be acknowledged: the broker redelivers it.
            if self.open:
                self._ack(mid, qos)

    @property
    def outstanding(self) -> int:
        return len(self._order)


class HandlerService:
    def __init__(
        self,
        *,
        client_id: str,
        scheme: TopicScheme = DEFAULT_SCHEME,
        qos: int = topology.INGEST_QOS,
        # As many workers as the broker may have unacknowledged messages with us: each worker holds one
        # message until it is stored and pushed, so fewer workers than receive_maximum capped the size of the
        # database and WebSocket batches, and with them ingest (200 workers: about 3,500 msgs/s in the bench).
        workers: int = 1000,
        queue_size: int = 1000,
        receive_maximum: int = 1000,
        session_expiry: int = 3600,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        drain_timeout: float = 30.0,
        metrics_redis_url: str | None = None,
        mqtt_options: dict[str, Any] | None = None,
        metrics: Metrics | None = None,
        retire_after_idle: float | None = None,
    ) -> None:
        self.client_id = client_id
        # Retiring: leave the shared group, handle what the session still holds, then remove the session.
        self.retire_after_idle = retire_after_idle
        self._last_received = time.monotonic()
        self._drained_for_retirement = False
        self.scheme = scheme
        self.qos = qos
        self.workers = workers
        self.max_payload_bytes = max_payload_bytes
        self.drain_timeout = drain_timeout
        self.metrics = metrics or Metrics("handler", client_id)
        self.metrics_redis_url = metrics_redis_url
        connect_properties = Properties(PacketTypes.CONNECT)
        connect_properties.SessionExpiryInterval = session_expiry
        connect_properties.ReceiveMaximum = receive_maximum
        self._mqtt_options = client_kwargs(
            "handler",
            client_id=client_id,
            clean_start=False,
            properties=connect_properties,
            **(mqtt_options or {}),
        )
        self._queue: asyncio.Queue[tuple[aiomqtt.Message, int | None, AckTracker]] = asyncio.Queue(queue_size)
        self._stopping = asyncio.Event()
        self._log = LogLimiter(logger)
        self._collisions = ClientIdCollisionWatch("handler", client_id)
        self._handlers: dict[str, Handler] = {}
        self._observers: list[Handler] = []
        self._client_event_handler: ClientEventHandler | None = None
        self.connected = asyncio.Event()

    def request_stop(self) -> None:
        """Stop receiving, process everything already received, acknowledge it, disconnect."""
        logger.info("handler %s: stop requested, %d messages queued", self.client_id, self._queue.qsize())
        self._stopping.set()

    async def run(self) -> None:
        self._handlers = load_handlers(self.scheme.subscribed_kinds())
        for kind, handler in self._handlers.items():
            logger.info("handler %s: kind %s -> %s", self.client_id, kind, describe(handler))
        self._observers = message_observers()
        self._client_event_handler = get_client_event_handler()
        if self._client_event_handler is not None:
            logger.info(
                "handler %s: client events -> %s", self.client_id, describe(self._client_event_handler)
            )
        unsubscribed = [kind for kind in registered_kinds() if kind not in self._handlers]
        if unsubscribed:
            logger.warning(
                "handlers registered for kinds %s, which are not answered kinds: they receive nothing",
                unsubscribed,
            )
        await self._warm_device_cache()
        workers = [
            asyncio.create_task(self._worker(), name=f"handler-worker-{i}") for i in range(self.workers)
        ]
        mirror: asyncio.Task[None] | None = None
        metrics_redis = aredis.Redis.from_url(self.metrics_redis_url) if self.metrics_redis_url else None
        if metrics_redis is not None:
            mirror = asyncio.create_task(self.metrics.mirror_forever(metrics_redis), name="handler-metrics")
        backoff = Backoff()
        try:
            while not self._stopping.is_set():
                try:
                    client = aiomqtt.Client(**self._mqtt_options)
                    # Before connecting: a resumed session delivers queued messages right after CONNACK.
                    mqtt_internals.enable_manual_acks(client)
                    async with client:
                        backoff.reset()
                        self._collisions.connected()
                        await self._serve(client)
                except aiomqtt.MqttError as exc:
                    self.connected.clear()
                    delay = backoff.next_delay()
                    if not self._collisions.lost(exc):
                        logger.warning("handler %s: %r; reconnecting in %.1fs", self.client_id, exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await get_store().close()
            if mirror is not None and metrics_redis is not None:
                mirror.cancel()
                await asyncio.gather(mirror, return_exceptions=True)
                with contextlib.suppress(redis.RedisError, OSError):
                    await self.metrics.mirror(metrics_redis)
                await metrics_redis.aclose()
            logger.info("handler %s stopped: %s", self.client_id, dict(self.metrics.counts))
        if self._drained_for_retirement:
            await self._forget_session()

    async def _warm_device_cache(self) -> None:
        """The devices most likely to send first, fetched before the first message (see device_cache.py);
        without the database, lookups fetch them one batch at a time instead."""
        try:
            cached = await get_store().devices.warm()
        except DatabaseError as exc:
            logger.warning("handler %s: device cache not warmed: %r", self.client_id, exc)
            return
        logger.info("handler %s: %d devices cached", self.client_id, cached)

    async def _serve(self, client: aiomqtt.Client) -> None:
        tracker = AckTracker(client)
        retire_watch: asyncio.Task[None] | None = None
        filters = self.scheme.handler_subscriptions()
        if self._client_event_handler is not None:
            filters += self.scheme.client_event_subscriptions()
        try:
            if self.retire_after_idle is None:
                await client.subscribe([(topic, self.qos) for topic in filters])
                logger.info("handler %s subscribed to %s", self.client_id, ", ".join(filters))
            else:
                # Leaving the group stops new messages for this session; those it already holds still arrive.
                await client.unsubscribe(filters)
                logger.info("handler %s retiring: left %s, draining its session", self.client_id, filters)
                retire_watch = asyncio.create_task(self._stop_when_idle(self.retire_after_idle))
            self.connected.set()
            reader = asyncio.create_task(self._read(client, tracker), name="handler-reader")
            stop = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({reader, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not reader.done():
                # Messages not yet taken from the client were never acknowledged: the broker keeps them.
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if self._stopping.is_set():
                await self._drain(tracker)
            else:
                reader.result()  # re-raise the connection error
        finally:
            if retire_watch is not None:
                retire_watch.cancel()
            self.connected.clear()
            tracker.open = False

    async def _stop_when_idle(self, idle: float) -> None:
        while True:
            await asyncio.sleep(min(idle, 0.2))
            quiet = time.monotonic() - self._last_received >= idle
            if quiet and self._queue.empty():
                logger.info("handler %s retiring: nothing received for %.1fs", self.client_id, idle)
                # Only a session drained this way is removed; one interrupted by SIGTERM keeps its messages.
                self._drained_for_retirement = True
                self.request_stop()
                return

    async def _forget_session(self) -> None:
        """Connect once with a clean start and no session expiry: the broker drops the old session, so a
        removed replica takes no further share of the group's messages while its session would have lived."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0
        options = dict(self._mqtt_options, clean_start=True, properties=properties)
        try:
            async with aiomqtt.Client(**options):
                pass
        except aiomqtt.MqttError as exc:
            logger.error(
                "handler %s: could not remove its session (%r); it expires by itself", self.client_id, exc
            )
            return
        logger.info("handler %s retired: its session is removed from the broker", self.client_id)

    async def _read(self, client: aiomqtt.Client, tracker: AckTracker) -> None:
        async for message in client.messages:
            self._last_received = time.monotonic()
            self.metrics.inc("received")
            # Blocks when the workers fall behind; unacknowledged messages then hold back the broker.
            await self._queue.put((message, tracker.track(message), tracker))

    async def _drain(self, tracker: AckTracker) -> None:
        try:
            await asyncio.wait_for(self._queue.join(), self.drain_timeout)
        except TimeoutError:
            logger.error(
                "handler %s: drain timed out with %d messages queued; the broker will redeliver them",
                self.client_id,
                self._queue.qsize(),
            )
        logger.info(
            "handler %s drained; %d acknowledgements outstanding", self.client_id, tracker.outstanding
        )

    async def _worker(self) -> None:
        while True:
            message, token, tracker = await self._queue.get()
            try:
                await self._process(message)
            except Exception as exc:
                # Counted and logged (rate-limited, one traceback per interval); the message is acknowledged:
                # redelivering a message its handler cannot take would only repeat the failure.
                self.metrics.inc("failed", reason="handler_error")
                self._log.warn(
                    "handler_error",
                    "handler %s: handler failed for topic %s: %r",
                    self.client_id,
                    message.topic.value,
                    exc,
                    exc_info=exc,
                )
            finally:
                tracker.done(token)
                self._queue.task_done()

    def _reject(self, reason: str, topic: str, detail: str = "") -> None:
        self.metrics.inc("failed", reason=reason)
        self._log.warn(reason, "skipped device message: reason=%s topic=%s %s", reason, topic, detail)

    async def _process(self, message: aiomqtt.Message) -> None:
        received_at = datetime.now(UTC)
        topic = message.topic.value
        parsed = self.scheme.parse_device_topic(topic)
        if parsed is None:
            client_event = self.scheme.parse_client_event_topic(topic)
            if client_event is not None and self._client_event_handler is not None:
                return await self._process_client_event(
                    message, client_event, received_at, self._client_event_handler
                )
            return self._reject("bad_topic", topic)
        username, kind = parsed
        handler = self._handlers.get(kind)
        if handler is None:
            return self._reject("unknown_kind", topic, f"kind={kind} answered={list(self._handlers)}")
        if message.retain:
            # Replayed by the broker from its retained store (on every (re)subscribe): an old message, which
            # must not move the device's state back. The broker's ACL refuses retained device publishes.
            return self._reject("retained", topic)
        payload = self._payload(message, topic)
        if payload is None:
            return None
        device = await get_store().lookup(username)
        if device is None:
            return self._reject("unknown_device", topic, f"username={username}")
        if not device.is_active:
            return self._reject("inactive_device", topic, f"username={username}")
        device_message = DeviceMessage(
            username=username,
            kind=kind,
            topic=topic,
            payload=payload,
            received_at=received_at,
            qos=message.qos,
            retain=message.retain,
            device_id=device.id,
            owner_id=device.owner_id,
        )
        for step in (handler, *self._observers):
            try:
                await step(device_message)
            except PayloadRefusedError as exc:  # the handler found the payload unusable for its kind
                return self._reject(exc.reason, topic, exc.detail)
            except PushFailedError as exc:
                self._push_failed(topic, exc)
        self.metrics.inc("processed")
        return None

    def _payload(self, message: aiomqtt.Message, topic: str) -> dict[str, Any] | None:
        """The payload when it passes payloads.py; otherwise None, the refusal counted and logged."""
        raw = message.payload
        if not isinstance(raw, bytes | bytearray):
            raw = str(raw).encode()
        try:
            return parse_payload(raw, max_bytes=self.max_payload_bytes)
        except PayloadRefusedError as exc:
            self._reject(exc.reason, topic, exc.detail)
            return None

    def _push_failed(self, topic: str, exc: PushFailedError) -> None:
        self.metrics.inc("ws_push_failed")
        self._log.warn("ws_push_failed", "stored but not pushed to WebSocket: topic=%s error=%s", topic, exc)

    async def _process_client_event(
        self,
        message: aiomqtt.Message,
        parsed: tuple[str, str, str],
        received_at: datetime,
        handler: ClientEventHandler,
    ) -> None:
        """A broker client event (not a device message: no device topic, no observers)."""
        topic = message.topic.value
        if message.retain:
            return self._reject("retained", topic)
        payload = self._payload(message, topic)
        if payload is None:
            return None
        node, clientid, event = parsed
        try:
            await handler(ClientEvent(node, clientid, event, topic, payload, received_at))
        except PayloadRefusedError as exc:
            return self._reject(exc.reason, topic, exc.detail)
        except PushFailedError as exc:
            self._push_failed(topic, exc)
        self.metrics.inc("processed")
        return None
