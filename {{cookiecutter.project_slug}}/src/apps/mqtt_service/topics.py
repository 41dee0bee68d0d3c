"""Topic names of both data paths, derived from the answered topology (never typed by hand elsewhere)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.devices.usernames import USERNAME_PATTERN, reserved_usernames, validate_device_username
from apps.mqtt_service import topology

# The broker's client events under the event prefix: <prefix>/<node>/clients/<clientid>/<event>.
CLIENT_EVENTS = ("connected", "disconnected")


def _configured_client_event_prefix() -> str:
    return settings.MQTT["presence_event_prefix"]


# MQTT 5 (section 1.5.4): a UTF-8 string is prefixed by a 16-bit length.
MAX_TOPIC_BYTES = 65535
_USERNAME_RE = re.compile(USERNAME_PATTERN)


@dataclass(frozen=True)
class TopicScheme:
    """Prefixes, kinds and shared group of one deployment. Tests build their own to stay isolated."""

    device_prefix: str = topology.DEVICE_TOPIC_PREFIX
    command_prefix: str = topology.COMMAND_TOPIC_PREFIX
    kinds: tuple[str, ...] = tuple(topology.DEVICE_MESSAGE_KINDS)
    shared_group: str = topology.SHARED_SUBSCRIPTION_GROUP
    # The device protocol's own kinds (presence announcements, command replies), subscribed like the others.
    protocol_kinds: tuple[str, ...] = (topology.PRESENCE_KIND, topology.REPLY_KIND)
    # EMQX publishes client events under $SYS/brokers; tests point this at an ordinary prefix (a broker drops
    # client publishes to $SYS).
    client_event_prefix: str = field(default_factory=_configured_client_event_prefix)

    def device_topic(self, username: str, kind: str) -> str:
        return f"{self.device_prefix}/{username}/{kind}"

    def command_topic(self, username: str) -> str:
        return f"{self.command_prefix}/{username}"

    def subscribed_kinds(self) -> tuple[str, ...]:
        """The kinds the handler service subscribes to and routes: the answered ones, then the protocol's."""
        return (*self.kinds, *(kind for kind in self.protocol_kinds if kind not in self.kinds))

    def handler_subscriptions(self) -> list[str]:
        # One subscription per kind (not `+/+`): devices cannot make the handler receive unknown kinds.
        group, prefix = self.shared_group, self.device_prefix
        return [f"$share/{group}/{prefix}/+/{kind}" for kind in self.subscribed_kinds()]

    def client_event_subscriptions(self) -> list[str]:
        # Shared, so each event reaches one replica; EMQX strips `$share/<group>/` before matching `$SYS/...`.
        return [
            f"$share/{self.shared_group}/{self.client_event_prefix}/+/clients/+/{event}"
            for event in CLIENT_EVENTS
        ]

    def parse_client_event_topic(self, topic: str) -> tuple[str, str, str] | None:
        """`<event prefix>/<node>/clients/<clientid>/<event>` -> (node, clientid, event); else None."""
        prefix = f"{self.client_event_prefix}/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 4 or parts[1] != "clients" or parts[3] not in CLIENT_EVENTS:
            return None
        node, _, clientid, event = parts
        return node, clientid, event

    def parse_device_topic(self, topic: str) -> tuple[str, str] | None:
        """`<device prefix>/<username>/<kind>` -> (username, kind), for a username a device can have;
        anything else -> None."""
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != self.device_prefix or not parts[2]:
            return None
        if _USERNAME_RE.fullmatch(parts[1]) is None:
            return None
        return parts[1], parts[2]

    def command_username(self, topic: str) -> str:
        """The device username of a command topic `<command prefix>/<username>`; ValueError saying why
        anything else is not one. Only these topics pass the broker's ACL and reach a device: a control
        character or an extra level makes a broker drop the whole connection."""
        prefix = f"{self.command_prefix}/"
        if not topic.startswith(prefix):
            expected = f"{prefix}<device username>"
            raise ValueError(f"MQTT topic {topic!r} is not a command topic: expected {expected}")
        username = topic[len(prefix) :]
        if _USERNAME_RE.fullmatch(username) and username not in reserved_usernames():
            return username  # the common case, checked cheaply: the publisher checks every command
        try:
            validate_device_username(username)
        except ValidationError as exc:
            reason = " ".join(exc.messages)
            raise ValueError(f"MQTT topic {topic!r} does not name a device: {reason}") from None
        return username


DEFAULT_SCHEME = TopicScheme()


def device_topic(username: str, kind: str) -> str:
    return DEFAULT_SCHEME.device_topic(username, kind)


def command_topic(username: str) -> str:
    return DEFAULT_SCHEME.command_topic(username)


def handler_subscriptions() -> list[str]:
    return DEFAULT_SCHEME.handler_subscriptions()


def parse_device_topic(topic: str) -> tuple[str, str] | None:
    return DEFAULT_SCHEME.parse_device_topic(topic)


def validate_publish_topic(topic: object) -> str:
    """Return `topic` if a client may publish to it, else raise TypeError/ValueError saying why."""
    if not isinstance(topic, str):
        raise TypeError(f"MQTT topic must be a str, got {type(topic).__name__}")
    if not topic:
        raise ValueError("MQTT topic must not be empty")
    if "+" in topic or "#" in topic:
        raise ValueError(f"MQTT topic {topic!r} contains a wildcard (+ or #); publish needs a concrete topic")
    if topic.startswith("$"):
        raise ValueError(f"MQTT topic {topic!r} starts with $, which is reserved for the broker")
    if "\x00" in topic:
        raise ValueError(f"MQTT topic {topic!r} contains a NUL character")
    try:
        encoded = topic.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"MQTT topic {topic!r} is not valid UTF-8 text") from exc
    if len(encoded) > MAX_TOPIC_BYTES:
        raise ValueError(f"MQTT topic is longer than {MAX_TOPIC_BYTES} bytes of UTF-8")
    return topic


def validate_command_topic(topic: object, scheme: TopicScheme = DEFAULT_SCHEME) -> str:
    """Return `topic` if it is exactly `<command prefix>/<a valid device username>`, else raise
    TypeError/ValueError saying why (the publisher's ACL grants nothing else)."""
    topic = validate_publish_topic(topic)
    scheme.command_username(topic)
    return topic
