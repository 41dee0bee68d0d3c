"""Durable command queue: a Redis stream read through a consumer group.

Why a stream and not a list: an entry read by a publisher stays in the group's pending list until the
publisher acknowledges it, and that happens only after the broker acknowledged the publish. A publisher
that crashes leaves its entries pending; a live one claims them once they have been idle long enough. An
entry that keeps failing is moved to a dead-letter stream with the reason instead of blocking the queue.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
from django.conf import settings

logger = logging.getLogger(__name__)

CONSUMER_GROUP = "publishers"
# The dead-letter stream of a queue is named after it: `<stream>:dead_letter`.
DEAD_LETTER_SUFFIX = ":dead_letter"
# Dead letters are for inspection; cap them so a flood of bad commands cannot fill Redis.
DEAD_LETTER_MAXLEN = 100_000


def async_redis(url: str, max_connections: int = 50) -> aredis.Redis:
    """An asyncio Redis client whose callers wait for a free connection instead of failing under bursts."""
    pool = aredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30)
    return aredis.Redis(connection_pool=pool)


class MalformedEntryError(ValueError):
    """A stream entry this code did not write (or an older, incompatible format)."""


@dataclass(frozen=True)
class Tracking:
    """A message whose fate its sender wants to hear about, with the MQTT 5 request/response properties.

    `outcome` names the listener registered with `apps.mqtt_service.outcomes.publish_outcome`: the publisher
    tells it `sent` once the broker acknowledged the message, or `expired` when `expires_at` (epoch seconds)
    passed before it could be published (it is then not published at all). The message carries the seconds
    left as its message expiry interval, so the broker drops it too once it is stale."""

    outcome: str
    expires_at: float
    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True)
class QueuedCommand:
    entry_id: str
    command_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    enqueued_at: float
    tracking: Tracking | None = None


def build_fields(
    command_id: str, topic: str, payload: bytes, qos: int, retain: bool, tracking: Tracking | None = None
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": command_id,
        "topic": topic,
        "payload": payload,
        "qos": str(qos),
        "retain": "1" if retain else "0",
        "enqueued_at": f"{time.time():.6f}",
    }
    if tracking is not None:
        fields["outcome"] = tracking.outcome
        fields["expires_at"] = repr(tracking.expires_at)
        if tracking.response_topic is not None:
            fields["response_topic"] = tracking.response_topic
        if tracking.correlation_data is not None:
            fields["correlation_data"] = tracking.correlation_data
    return fields


def _decode_tracking(fields: dict[bytes, bytes]) -> Tracking | None:
    outcome = fields.get(b"outcome")
    if outcome is None:
        return None  # an untracked message (mqtt_publisher.publish): the common, fast case
    response_topic = fields.get(b"response_topic")
    expires_at = float(fields[b"expires_at"])
    if not math.isfinite(expires_at):
        raise ValueError(f"expires_at {expires_at} is not a finite time")
    return Tracking(
        outcome=outcome.decode(),
        expires_at=expires_at,
        response_topic=response_topic.decode() if response_topic is not None else None,
        correlation_data=fields.get(b"correlation_data"),
    )


def decode_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> QueuedCommand:
    entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    try:
        qos = int(fields[b"qos"])
        if qos not in (0, 1, 2):
            raise ValueError(f"qos {qos} out of range")
        return QueuedCommand(
            entry_id=entry,
            command_id=fields[b"id"].decode(),
            topic=fields[b"topic"].decode(),
            payload=fields[b"payload"],
            qos=qos,
            retain=fields[b"retain"] == b"1",
            enqueued_at=float(fields[b"enqueued_at"]),
            tracking=_decode_tracking(fields),
        )
    except (KeyError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedEntryError(f"entry {entry}: {exc!r}") from exc


class PublishQueue:
    """Names of the stream, its group and dead letters, plus the producer side (sync and async)."""

    def __init__(
        self,
        url: str,
        stream: str,
        dead_letter_stream: str | None = None,
        group: str = CONSUMER_GROUP,
    ) -> None:
        self.url = url
        self.stream = stream
        self.group = group
        self.dead_letter_stream = dead_letter_stream or f"{stream}{DEAD_LETTER_SUFFIX}"
        self._sync: redis.Redis | None = None
        # redis.asyncio connections belong to one event loop; keep one client per loop.
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_settings(cls) -> PublishQueue:
        # The stream's name (settings.MQTT["publish_queue"]) starts with the project slug by default, so two
        # projects on one Redis never take each other's commands.
        return cls(url=settings.REDIS_PUBLISH_QUEUE_URL, stream=settings.MQTT["publish_queue"])

    def sync_client(self) -> redis.Redis:
        if self._sync is None:
            self._sync = redis.Redis.from_url(self.url)
        return self._sync

    def async_client(self) -> aredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = async_redis(self.url)
            self._async[loop] = client
        return client

    def enqueue(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        *,
        command_id: str | None = None,
        tracking: Tracking | None = None,
    ) -> str:
        """Add one message; returns its id (a new one unless given), sent as the user property command_id."""
        command_id = command_id or uuid.uuid4().hex
        fields = build_fields(command_id, topic, payload, qos, retain, tracking)
        self.sync_client().xadd(self.stream, fields)
        return command_id

    async def aenqueue(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        *,
        command_id: str | None = None,
        tracking: Tracking | None = None,
    ) -> str:
        command_id = command_id or uuid.uuid4().hex
        fields = build_fields(command_id, topic, payload, qos, retain, tracking)
        await self.async_client().xadd(self.stream, fields)
        return command_id


@dataclass(frozen=True)
class QueueStats:
    length: int
    pending: int
    dead_letters: int
    consumers: int


class QueueConsumer:
    """The consumer-group side used by one publisher replica (async only: it runs in the event loop)."""

    def __init__(
        self,
        queue: PublishQueue,
        consumer: str,
        client: aredis.Redis,
        *,
        max_deliveries: int = 5,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self.queue = queue
        self.consumer = consumer
        self.redis = client
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms

    async def ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists. Start at 0 so earlier entries are delivered."""
        try:
            await self.redis.xgroup_create(self.queue.stream, self.queue.group, id="0", mkstream=True)
            logger.info("created consumer group %s on %s", self.queue.group, self.queue.stream)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _with_group(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        # A Redis that restarted empty has lost the group: re-create it and retry once.
        try:
            return await command(*args, **kwargs)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            logger.warning(
                "consumer group %s missing on %s, re-creating", self.queue.group, self.queue.stream
            )
            await self.ensure_group()
            return await command(*args, **kwargs)

    async def read_new(self, count: int, block_ms: int) -> list[tuple[str, dict[bytes, bytes]]]:
        response = await self._with_group(
            self.redis.xreadgroup,
            self.queue.group,
            self.consumer,
            {self.queue.stream: ">"},
            count=count,
            block=block_ms,
        )
        if not response:
            return []
        # RESP2 gives [[stream, entries]], RESP3 a dict; both hold (id, fields) pairs.
        streams = response.values() if isinstance(response, dict) else [item[1] for item in response]
        return [(_text(entry_id), fields) for entries in streams for entry_id, fields in entries]

    async def claim_stale(self, count: int) -> list[tuple[str, dict[bytes, bytes], int]]:
        """Take over entries idle longer than claim_idle_ms (a dead replica's, or our own failed ones)."""
        response = await self._with_group(
            self.redis.xautoclaim,
            self.queue.stream,
            self.queue.group,
            self.consumer,
            self.claim_idle_ms,
            start_id="0-0",
            count=count,
        )
        entries = [(_text(entry_id), fields) for entry_id, fields in response[1] if fields is not None]
        return await self._with_delivery_counts(entries)

    async def recover_own(
        self, count: int, exclude: frozenset[str] = frozenset()
    ) -> list[tuple[str, dict[bytes, bytes], int]]:
        """Re-take entries this consumer name still holds (after a restart or a lost broker connection),
        except those in `exclude` (still being published or acknowledged by this process)."""
        pending = await self._with_group(
            self.redis.xpending_range,
            self.queue.stream,
            self.queue.group,
            min="-",
            max="+",
            count=count,
            consumername=self.consumer,
        )
        ids = [_text(item["message_id"]) for item in pending]
        ids = [entry_id for entry_id in ids if entry_id not in exclude]
        if not ids:
            return []
        # XCLAIM counts the attempt (delivery counter + 1), so a poison entry cannot loop forever.
        claimed = await self.redis.xclaim(self.queue.stream, self.queue.group, self.consumer, 0, ids)
        entries = [(_text(entry_id), fields) for entry_id, fields in claimed if fields is not None]
        return await self._with_delivery_counts(entries)

    async def _with_delivery_counts(
        self, entries: list[tuple[str, dict[bytes, bytes]]]
    ) -> list[tuple[str, dict[bytes, bytes], int]]:
        if not entries:
            return []
        details = await self.redis.xpending_range(
            self.queue.stream,
            self.queue.group,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries) * 4 + 100,
            consumername=self.consumer,
        )
        counts = {_text(item["message_id"]): int(item["times_delivered"]) for item in details}
        return [(entry_id, fields, counts.get(entry_id, 1)) for entry_id, fields in entries]

    async def ack(self, entry_ids: list[str]) -> None:
        """Acknowledge and delete in one round trip: the stream only holds commands not yet delivered."""
        if not entry_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.queue.stream, self.queue.group, *entry_ids)
        pipe.xdel(self.queue.stream, *entry_ids)
        await pipe.execute()

    async def dead_letter(
        self, entry_id: str, fields: dict[bytes, bytes], reason: str, deliveries: int
    ) -> None:
        record: dict[Any, Any] = dict(fields)
        record.update(
            {
                "reason": reason,
                "deliveries": str(deliveries),
                "source_entry_id": entry_id,
                "failed_at": f"{time.time():.6f}",
                "consumer": self.consumer,
            }
        )
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.queue.dead_letter_stream, record, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
        pipe.xack(self.queue.stream, self.queue.group, entry_id)
        pipe.xdel(self.queue.stream, entry_id)
        await pipe.execute()
        logger.error(
            "command moved to dead letters: entry=%s reason=%s deliveries=%d stream=%s",
            entry_id,
            reason,
            deliveries,
            self.queue.dead_letter_stream,
        )


async def queue_stats(client: aredis.Redis, queue: PublishQueue) -> QueueStats:
    length = await client.xlen(queue.stream)
    dead = await client.xlen(queue.dead_letter_stream)
    pending = 0
    consumers = 0
    try:
        summary = await client.xpending(queue.stream, queue.group)
        pending = int(summary["pending"])
        consumers = len(summary.get("consumers") or [])
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
    return QueueStats(length=length, pending=pending, dead_letters=dead, consumers=consumers)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
