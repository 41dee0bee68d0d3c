"""Publisher replica: publish queued commands, many in flight, each acknowledged only once delivered.

Life of an entry: XREADGROUP hands it to this replica (pending), it is published with up to `window` others
in flight, and only when aiomqtt's publish returned (PUBACK/PUBCOMP for QoS 1/2, written for QoS 0) it is
XACKed and deleted. A publish that fails leaves the entry pending: after a reconnect this replica re-takes
its own pending entries, and entries idle longer than `claim_idle_ms` (a dead replica's) are claimed by
any live one. Each re-take counts as a delivery; past `max_deliveries` the entry goes to the dead-letter
stream with the reason.

A command is dead-lettered at once, alone, when it can never be delivered: its entry is malformed, its topic
is not `<command prefix>/<device username>` (a control character or an extra level makes a broker drop the
whole connection, and with it every command in flight), the MQTT client cannot encode it, or the broker
refuses it (a PUBACK/PUBREC reason code of 0x80 or above, such as "Not authorized"). The other commands of
the connection go on.

A tracked entry (publish_queue.Tracking, as the commands app queues them) also carries MQTT 5 request/response
properties, and its app hears what became of it (outcomes.py): `sent` after the broker's acknowledgement, or
`expired` instead of a publish when its deadline passed first. Untracked entries (mqtt_publisher.publish)
take the same path as before, with no extra work.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import redis
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.mqtt_service import mqtt_internals, outcomes
from apps.mqtt_service.connection import Backoff, ClientIdCollisionWatch, client_kwargs
from apps.mqtt_service.log_limit import LogLimiter
from apps.mqtt_service.metrics import Metrics
from apps.mqtt_service.mqtt_internals import BrokerRefusedError
from apps.mqtt_service.publish_queue import (
    MalformedEntryError,
    PublishQueue,
    QueueConsumer,
    QueuedCommand,
    Tracking,
    async_redis,
    decode_entry,
)
from apps.mqtt_service.topics import DEFAULT_SCHEME, TopicScheme, validate_command_topic

logger = logging.getLogger(__name__)

# paho's Properties() constructor rebuilds its lookup tables each time (it was the top cost per publish);
# a shallow copy of one empty instance shares those read-only tables.
_EMPTY_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)


class ConnectionLostError(Exception):
    """The broker connection broke while publishing; the session must reconnect."""


class PublisherService:
    def __init__(
        self,
        queue: PublishQueue,
        *,
        client_id: str,
        window: int = 100,
        read_block_ms: int = 500,
        claim_interval: float = 5.0,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        publish_timeout: float = 10.0,
        mqtt_options: dict[str, Any] | None = None,
        metrics: Metrics | None = None,
        scheme: TopicScheme = DEFAULT_SCHEME,
    ) -> None:
        self.queue = queue
        self.scheme = scheme
        self.client_id = client_id
        self.window = window
        self.read_block_ms = read_block_ms
        self.claim_interval = claim_interval
        self.publish_timeout = publish_timeout
        self.metrics = metrics or Metrics("publisher", client_id)
        self.redis = async_redis(queue.url)
        self.consumer = QueueConsumer(
            queue, client_id, self.redis, max_deliveries=max_deliveries, claim_idle_ms=claim_idle_ms
        )
        self._mqtt_options = client_kwargs(
            "publisher", client_id=client_id, max_inflight_messages=window, **(mqtt_options or {})
        )
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        # Read again once a quarter of the window is free: fewer, larger XREADGROUP calls.
        self._low_water = max(1, window // 4)
        self._connection_lost: asyncio.Event = asyncio.Event()
        self._pending_acks: list[str] = []
        self._acking: list[str] = []
        self._acks_ready = asyncio.Event()
        self._collisions = ClientIdCollisionWatch("publisher", client_id)
        # Why the broker connection last dropped (MqttCodeError with the broker's reason code), if it said.
        self._disconnect_reason: BaseException | None = None
        self.connected = asyncio.Event()
        self._outcome_listeners: dict[str, outcomes.Listener] = {}
        self._log = LogLimiter(logger)

    def request_stop(self) -> None:
        """Stop reading new entries, finish the ones in flight, then return from run()."""
        logger.info(
            "publisher %s: stop requested, draining %d in flight", self.client_id, len(self._inflight)
        )
        self._stopping.set()

    async def run(self) -> None:
        background = [
            asyncio.create_task(self._ack_loop(), name="publisher-acks"),
            asyncio.create_task(self.metrics.mirror_forever(self.redis), name="publisher-metrics"),
        ]
        self._outcome_listeners = outcomes.load_listeners()
        backoff = Backoff()
        try:
            while not self._stopping.is_set():
                try:
                    await self.consumer.ensure_group()
                    client = aiomqtt.Client(**self._mqtt_options)
                    mqtt_internals.respect_receive_maximum(client, self.window)
                    async with client:
                        client.pending_calls_threshold = self.window + 10
                        mqtt_internals.watch_refusals(client)
                        logger.info(
                            "publisher %s connected to %s", self.client_id, self._mqtt_options["hostname"]
                        )
                        backoff.reset()
                        self._collisions.connected()
                        await self._serve(client)
                except (aiomqtt.MqttError, ConnectionLostError, redis.RedisError, OSError) as exc:
                    self.connected.clear()
                    delay = backoff.next_delay()
                    if not self._collisions.lost(exc):
                        logger.warning("publisher %s: %r; reconnecting in %.1fs", self.client_id, exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._flush_acks_until_done()
            with contextlib.suppress(redis.RedisError, OSError):
                await self.metrics.mirror(self.redis)
            await self.redis.aclose()
            logger.info("publisher %s stopped", self.client_id)

    async def _serve(self, client: aiomqtt.Client) -> None:
        self._connection_lost.clear()
        self._disconnect_reason = None
        self.connected.set()
        claimer = asyncio.create_task(self._claim_loop(client), name="publisher-claims")
        watcher = asyncio.create_task(self._watch_connection(client), name="publisher-connection")
        try:
            # Entries this consumer name held before (restart, lost connection) go first.
            for entry_id, fields, deliveries in await self.consumer.recover_own(count=10_000):
                await self._start(client, entry_id, fields, deliveries, retried=True)
            await self._read_loop(client)
            if self._stopping.is_set():
                await self._drain()
        finally:
            for task in (claimer, watcher):
                task.cancel()
            await asyncio.gather(claimer, watcher, return_exceptions=True)
            self.connected.clear()
            if self._inflight:
                # Connection gone: these entries stay pending and are re-taken after the reconnect.
                for task in self._inflight:
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._connection_lost.is_set() and not self._stopping.is_set():
            raise ConnectionLostError("broker connection lost while publishing") from self._disconnect_reason

    async def _watch_connection(self, client: aiomqtt.Client) -> None:
        """Notice a dropped connection at once. Publishes waiting for a PUBACK only fail at their timeout, and
        with a full window nothing else is sent that would fail sooner: a 5 s broker outage then cost 10 s."""
        # aiomqtt 2.x has no public hook for this; see mqtt_internals.
        self._disconnect_reason = await mqtt_internals.wait_disconnected(client)
        self._connection_lost.set()
        self._slot_freed.set()
        # No PUBACK can come on a dead connection: the entries stay pending and are re-taken after reconnect.
        for task in list(self._inflight):
            task.cancel()

    async def _read_loop(self, client: aiomqtt.Client) -> None:
        redis_backoff = Backoff()
        low_water = self._low_water
        while not self._stopping.is_set() and not self._connection_lost.is_set():
            free = self.window - len(self._inflight)
            if free < low_water:
                # Read only what can go out now: entries held but not in flight would look idle to other
                # replicas and be claimed twice.
                await self._wait_for_slot()
                continue
            try:
                entries = await self.consumer.read_new(count=free, block_ms=self.read_block_ms)
                recovered = []
                if redis_backoff.attempt:
                    recovered = await self._unheld_entries(also_held={entry_id for entry_id, _ in entries})
            except (redis.RedisError, OSError) as exc:
                delay = redis_backoff.next_delay()
                logger.warning(
                    "publisher %s: Redis read failed: %r; retrying in %.1fs", self.client_id, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            redis_backoff.reset()
            for entry_id, fields in entries:
                await self._start(client, entry_id, fields, deliveries=1, retried=False)
            for entry_id, fields, deliveries in recovered:
                await self._start(client, entry_id, fields, deliveries, retried=True)

    async def _unheld_entries(self, also_held: set[str]) -> list[tuple[str, dict[bytes, bytes], int]]:
        """After Redis came back: a read whose reply was lost when it went away left entries pending under
        this name that nobody publishes. Take them back now rather than after claim_idle_ms (30 s)."""
        held = {task.get_name() for task in self._inflight} | set(self._pending_acks) | set(self._acking)
        return await self.consumer.recover_own(10_000, frozenset(held | also_held))

    async def _wait_for_slot(self) -> None:
        self._slot_freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slot_freed.wait(), 0.5)

    async def _start(
        self,
        client: aiomqtt.Client,
        entry_id: str,
        fields: dict[bytes, bytes],
        deliveries: int,
        retried: bool,
    ) -> None:
        if deliveries > self.consumer.max_deliveries:
            reason = f"not delivered after {deliveries - 1} attempts"
            await self._dead_letter(entry_id, fields, reason, deliveries)
            return
        if retried:
            self.metrics.inc("retried")
        task = asyncio.create_task(self._publish(client, entry_id, fields, deliveries), name=entry_id)
        self._inflight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self.window - len(self._inflight) >= self._low_water:
            self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("publisher %s: publish task crashed", self.client_id, exc_info=task.exception())

    async def _publish(
        self, client: aiomqtt.Client, entry_id: str, fields: dict[bytes, bytes], deliveries: int
    ) -> None:
        try:
            command = decode_entry(entry_id, fields)
            # publish() checked it already; an entry written around it must not cost the connection.
            validate_command_topic(command.topic, self.scheme)
        except (MalformedEntryError, ValueError, TypeError) as exc:
            reason = "malformed entry" if isinstance(exc, MalformedEntryError) else "invalid topic"
            await self._dead_letter(entry_id, fields, f"{reason}: {exc}", deliveries)
            return
        if command.tracking is not None and time.time() >= command.tracking.expires_at:
            # Too late: the device must not act on it. Its app hears so instead of a publish.
            self.metrics.inc("expired")
            await self._report(command, command.tracking, outcomes.EXPIRED)
            self._pending_acks.append(entry_id)
            self._acks_ready.set()
            return
        try:
            await self._send(client, command)
        except aiomqtt.MqttError as exc:
            # Left pending on purpose: re-taken after reconnect (own) or claimed when idle (by anyone).
            logger.warning(
                "publisher %s: publish of command %s to %s failed: %r",
                self.client_id,
                command.command_id,
                command.topic,
                exc,
            )
            self.metrics.inc("publish_failed")
            self._connection_lost.set()
            return
        except (ValueError, TypeError) as exc:
            # The MQTT library refused the message itself (e.g. too large): retrying cannot help.
            await self._dead_letter(entry_id, fields, f"rejected by MQTT client: {exc}", deliveries)
            return
        except BrokerRefusedError as exc:
            await self._dead_letter(entry_id, fields, f"refused by broker: {exc}", deliveries)
            return
        self.metrics.inc("published")
        if command.tracking is not None:
            # Before the acknowledgement: a crash in between publishes it again rather than lose the outcome.
            await self._report(command, command.tracking, outcomes.SENT)
        self._pending_acks.append(entry_id)
        self._acks_ready.set()

    async def _report(self, command: QueuedCommand, tracking: Tracking, status: str) -> None:
        name = tracking.outcome
        listener = self._outcome_listeners.get(name)
        if listener is None:
            self.metrics.inc("outcome_failed")
            self._log.warn(
                "outcome_unknown",
                "publisher %s: no outcome listener %r for command %s (registered: %s)",
                self.client_id,
                name,
                command.command_id,
                sorted(self._outcome_listeners),
            )
            return
        try:
            await listener(outcomes.PublishOutcome(command.command_id, status, datetime.now(UTC)))
        except Exception as exc:
            self.metrics.inc("outcome_failed")
            self._log.warn(
                "outcome_failed",
                "publisher %s: outcome %s of command %s not recorded: %r",
                self.client_id,
                status,
                command.command_id,
                exc,
                exc_info=exc,
            )

    async def _dead_letter(
        self, entry_id: str, fields: dict[bytes, bytes], reason: str, deliveries: int
    ) -> None:
        await self.consumer.dead_letter(entry_id, fields, reason, deliveries)
        self.metrics.inc("dead_lettered")

    async def _send(self, client: aiomqtt.Client, command: QueuedCommand) -> None:
        """One publish; returns when the broker acknowledged it (QoS 1/2) or it was written (QoS 0), raises
        BrokerRefusedError when the broker refused it."""
        properties = copy.copy(_EMPTY_PUBLISH_PROPERTIES)
        properties.UserProperty = [("command_id", command.command_id)]
        tracking = command.tracking
        if tracking is not None:
            # Whole seconds, rounded up: a command never expires at the broker before its deadline.
            properties.MessageExpiryInterval = max(1, math.ceil(tracking.expires_at - time.time()))
            if tracking.response_topic is not None:
                properties.ResponseTopic = tracking.response_topic
            if tracking.correlation_data is not None:
                properties.CorrelationData = tracking.correlation_data
        await mqtt_internals.publish_and_wait(
            client,
            command.topic,
            command.payload,
            command.qos,
            command.retain,
            properties,
            self.publish_timeout,
        )

    async def _drain(self) -> None:
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _claim_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.claim_interval)
            if self._stopping.is_set():
                return
            try:
                free = self.window - len(self._inflight)
                if free > 0:
                    for entry_id, fields, deliveries in await self.consumer.claim_stale(count=free):
                        logger.info("publisher %s claimed stale entry %s", self.client_id, entry_id)
                        await self._start(client, entry_id, fields, deliveries, retried=True)
                self.metrics.set_gauge("queue_depth", await self.redis.xlen(self.queue.stream))
            except (redis.RedisError, OSError) as exc:
                logger.warning("publisher %s: claim pass failed: %r", self.client_id, exc)

    async def _ack_loop(self) -> None:
        backoff = Backoff()
        while True:
            await self._acks_ready.wait()
            self._acks_ready.clear()
            batch, self._pending_acks = self._pending_acks, []
            if not batch:
                continue
            self._acking = batch
            try:
                await self.consumer.ack(batch)
                backoff.reset()
            except asyncio.CancelledError:
                self._pending_acks[:0] = batch  # the final flush in run() acknowledges them
                raise
            except (redis.RedisError, OSError) as exc:
                # Keep them: an entry acknowledged late is only a possible duplicate, never a loss.
                self._pending_acks[:0] = batch
                delay = backoff.next_delay()
                logger.warning("publisher %s: ack failed: %r; retrying in %.1fs", self.client_id, exc, delay)
                await asyncio.sleep(delay)
                self._acks_ready.set()
            finally:
                self._acking = []

    async def _flush_acks_until_done(self, attempts: int = 10) -> None:
        for _ in range(attempts):
            if not self._pending_acks:
                return
            batch, self._pending_acks = self._pending_acks, []
            try:
                await self.consumer.ack(batch)
                return
            except (redis.RedisError, OSError) as exc:
                self._pending_acks[:0] = batch
                logger.warning("publisher %s: final ack failed: %r", self.client_id, exc)
                await asyncio.sleep(0.5)
        logger.error(
            "publisher %s: %d entries published but not acknowledged", self.client_id, len(self._pending_acks)
        )
