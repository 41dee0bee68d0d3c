"""How both MQTT services connect to the broker: client options from settings, the retry pacing, and
spotting two processes that share one client id."""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Iterator
from typing import Any, Literal

import aiomqtt
from django.conf import settings

from apps.mqtt_service.mqtt_internals import share_property_tables

Role = Literal["handler", "publisher"]

logger = logging.getLogger(__name__)


def client_id_for(role: Role, configured: str | None = None) -> str:
    """The MQTT client id (also the Redis consumer name) of this replica.

    Unset: `<slug>-<role>-<hostname>`. Set (MQTT_CLIENT_ID or --client-id): used as is when it names the role,
    otherwise `-<role>` is appended, so a handler and a publisher started from the same environment never
    share an id (the broker would keep disconnecting one of them).
    """
    mqtt = settings.MQTT
    base = configured or mqtt.get("client_id")
    if not base:
        prefix = mqtt.get("client_id_prefix") or "mqtt"
        return f"{prefix}-{role}-{mqtt.get('hostname') or socket.gethostname()}"
    return base if role in base else f"{base}-{role}"


def client_id_help(role: Role) -> str:
    """The --client-id help of the service commands: what client_id_for() does, and its value here."""
    prefix = settings.MQTT.get("client_id_prefix") or "mqtt"
    also = " (also its Redis consumer name)" if role == "publisher" else ""
    return (
        f"MQTT client id of this process{also}. Default: MQTT_CLIENT_ID, else {prefix}-{role}-<hostname> "
        f"(here: {client_id_for(role)}). An id without '{role}' in it gets '-{role}' appended. Every running "
        f"{role} needs its own id: two processes with one id take the broker session from each other."
    )


def client_kwargs(role: Role, *, client_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `aiomqtt.Client`: broker address, the role's credentials, MQTT 5, TCP_NODELAY."""
    share_property_tables()  # every decoded PUBLISH/PUBACK builds one; see mqtt_internals
    mqtt = settings.MQTT
    password = mqtt.get(f"{role}_password") or None
    kwargs: dict[str, Any] = {
        "hostname": mqtt.get("host", "127.0.0.1"),
        "port": int(mqtt.get("port", 1883)),
        # Without a password the service connects anonymously (a local broker without authentication).
        "username": mqtt.get(f"{role}_username") if password else None,
        "password": password,
        "identifier": client_id or client_id_for(role),
        "protocol": aiomqtt.ProtocolVersion.V5,
        "keepalive": 30,
        "timeout": 10,
        # Small MQTT packets must not wait for Nagle's algorithm (it cost 6x throughput in measurements).
        "socket_options": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        "logger": logging.getLogger(f"apps.mqtt_service.{role}.client"),
    }
    kwargs.update(overrides)
    return kwargs


class Backoff:
    """Capped exponential backoff with full jitter, so replicas do not reconnect in lockstep.

    The cap bounds how long a service stays idle after its dependency is back: a 2 s cap keeps resumption
    well under 5 s (with a 5 s cap a jittered wait of up to 5 s could start just before the broker returned).
    """

    def __init__(self, initial: float = 0.5, cap: float = 2.0) -> None:
        self.initial = initial
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        self.attempt = 0


# MQTT 5 reason code of the DISCONNECT a broker sends to the older of two connections with one client id
# (EMQX does; Mosquitto 2.0 closes the socket without it).
SESSION_TAKEN_OVER = 142


def session_taken_over(error: BaseException | None) -> bool:
    """True when `error` (or what caused it) is the broker's "session taken over" disconnect."""
    return any(
        isinstance(link, aiomqtt.MqttCodeError) and _code(link.rc) == SESSION_TAKEN_OVER
        for link in _causes(error)
    )


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    """The error and what caused it, in turn."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _code(rc: object) -> int | None:
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


class ClientIdCollisionWatch:
    """Two processes started with one client id take the broker session from each other every few hundred
    milliseconds, each seeing only a lost connection. Say so once per process, naming the fix, instead of
    a reconnect warning at every takeover.

    A takeover is certain when the broker says so (reason code 142); a broker that just closes the socket
    gives it away by repetition: connections accepted, then lost within seconds, several times in a row.
    """

    SHORT_LIVED_SECONDS = 5.0
    SHORT_LIVED_IN_A_ROW = 3

    def __init__(self, role: Role, client_id: str) -> None:
        self.role = role
        self.client_id = client_id
        self.reported = False
        self._connected_at: float | None = None
        self._short_lived = 0

    def connected(self) -> None:
        self._connected_at = time.monotonic()

    def lost(self, error: BaseException) -> bool:
        """Account for a lost (or failed) connection; True when it is part of a collision, which then needs
        no log line of its own."""
        short_lived = (
            self._connected_at is not None
            and time.monotonic() - self._connected_at < self.SHORT_LIVED_SECONDS
            and any(isinstance(link, aiomqtt.MqttError) for link in _causes(error))  # not a Redis error
        )
        self._connected_at = None
        self._short_lived = self._short_lived + 1 if short_lived else 0
        if session_taken_over(error):
            self._report("another MQTT client connected with the same client id and took this session over")
            return True
        if self._short_lived >= self.SHORT_LIVED_IN_A_ROW:
            self._report(
                f"the broker dropped this connection {self._short_lived} times in a row within seconds of "
                "accepting it, which is what another client connecting with the same client id does"
            )
            return True
        return self.reported and short_lived

    def _report(self, what: str) -> None:
        if self.reported:
            return
        self.reported = True
        logger.error(
            "%s %s: %s. Two processes sharing client id %r keep taking the broker session from each other. "
            "Give each process its own id: set MQTT_CLIENT_ID (or pass --client-id) per process.",
            self.role,
            self.client_id,
            what,
            self.client_id,
        )
