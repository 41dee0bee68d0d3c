{%- set a = cookiecutter | answers -%}
"""Send a command to a device from anywhere in Django (views, tasks, shell).

    from apps.mqtt_service.mqtt_publisher import mqtt_publisher
    command_id = mqtt_publisher.publish(
        topic={{ (a.command_topic_prefix ~ "/device_001") | py }},
        payload={"cmd": "reboot"},
        qos={{ a.command_qos }},
    )

The command is validated here and enqueued in Redis; a publisher service delivers it (at least once) and the
device receives `command_id` as the MQTT 5 user property "command_id" to drop duplicates.
"""

from __future__ import annotations

import json
from typing import Any

from apps.mqtt_service import topology
from apps.mqtt_service.publish_queue import PublishQueue
from apps.mqtt_service.topics import DEFAULT_SCHEME, TopicScheme, validate_command_topic


def encode_payload(payload: Any) -> bytes:
    """dict/list -> compact JSON; str -> UTF-8; bytes as given. Anything else is a TypeError."""
    if isinstance(payload, dict | list):
        try:
            return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"MQTT payload is not JSON-serialisable: {exc}") from exc
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("MQTT payload str is not valid UTF-8 text") from exc
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"MQTT payload must be dict, list, str or bytes, got {type(payload).__name__}")


def validate_qos(qos: Any) -> int:
    if isinstance(qos, bool) or not isinstance(qos, int):
        raise TypeError(f"MQTT QoS must be an int 0, 1 or 2, got {qos!r}")
    if qos not in (0, 1, 2):
        raise ValueError(f"MQTT QoS must be 0, 1 or 2, got {qos}")
    return qos


class MqttPublisher:
    """Validates commands and puts them on the durable publish queue."""

    def __init__(
        self,
        queue: PublishQueue | None = None,
        scheme: TopicScheme = DEFAULT_SCHEME,
        default_qos: int = topology.COMMAND_QOS,
    ) -> None:
        self._queue = queue
        self.scheme = scheme
        self.default_qos = default_qos

    @property
    def queue(self) -> PublishQueue:
        # Built on first use so importing this module needs no configured settings.
        if self._queue is None:
            self._queue = PublishQueue.from_settings()
        return self._queue

    def _validate(self, topic: Any, payload: Any, qos: Any, retain: Any) -> tuple[str, bytes, int, bool]:
        topic = validate_command_topic(topic, self.scheme)
        qos = validate_qos(self.default_qos if qos is None else qos)
        if not isinstance(retain, bool):
            raise TypeError(f"retain must be a bool, got {retain!r}")
        return topic, encode_payload(payload), qos, retain

    def publish(self, *, topic: str, payload: Any, qos: int | None = None, retain: bool = False) -> str:
        """Validate and enqueue; returns the command id. Raises TypeError/ValueError and enqueues nothing."""
        args = self._validate(topic, payload, qos, retain)
        return self.queue.enqueue(*args)

    async def apublish(
        self, *, topic: str, payload: Any, qos: int | None = None, retain: bool = False
    ) -> str:
        """Async twin of publish(), for async views and consumers (no blocking Redis call)."""
        args = self._validate(topic, payload, qos, retain)
        return await self.queue.aenqueue(*args)


mqtt_publisher = MqttPublisher()
