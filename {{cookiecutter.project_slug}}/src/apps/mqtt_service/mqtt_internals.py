"""Every use of aiomqtt's and paho-mqtt's private internals, in one place.

aiomqtt 2.5 (pinned below 3, an incompatible rewrite) has no public way to do three things the services need,
and paho-mqtt, its engine, builds costly objects on every packet:
- manual acknowledgements (handler): paho's `manual_ack_set` and `ack`, reached through aiomqtt's `_client`;
- a publish that waits for its PUBACK without aiomqtt's per-call costs (publisher): paho's `publish` plus an
  entry in aiomqtt's `_pending_publishes`, whose `_on_publish` calls `.set()` on it; and a PUBACK's failure
  reason code, which aiomqtt ignores, through paho's `on_publish`;
- learning at once that the connection dropped (publisher): aiomqtt's `_disconnected` future;
- keeping within the broker's Receive Maximum (publisher): paho ignores the one CONNACK announces, so its
  in-flight limit (`_max_inflight_messages`) is lowered from its `on_connect` callback;
- paho's `Properties` rebuilds two lookup tables per instance: `share_property_tables` shares one copy.

`check()` lists what an upgrade moved or reshaped. tests/test_mqtt_internals.py runs it, so upgrading aiomqtt
or paho-mqtt fails that test first with a message naming what moved; both services run it at start and refuse
to run on internals they do not know.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

_PROPERTIES_ATTRIBUTES = {"packetType", "types", "names", "properties"}


# --- Manual acknowledgements (handler) ----------------------------------------------------------------------


def enable_manual_acks(client: aiomqtt.Client) -> None:
    """QoS 1/2 messages are acknowledged only through `acknowledger(client)`. Call before connecting: a
    resumed session delivers queued messages right after CONNACK."""
    client._client.manual_ack_set(True)


def acknowledger(client: aiomqtt.Client) -> Callable[[int, int], Any]:
    """paho's `ack(mid, qos)` of this client: sends the PUBACK (QoS 1) or PUBCOMP (QoS 2) of one message."""
    return client._client.ack


# --- Confirmed publishes (publisher) ------------------------------------------------------------------------


class BrokerRefusedError(Exception):
    """The broker answered the publish with a failure reason code: sending it again cannot help."""


class _Confirmation:
    """Stands in for the asyncio.Event aiomqtt keeps per pending publish: its PUBACK callback calls set()."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future

    def set(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def refuse(self, reason: str) -> None:
        if not self.future.done():
            self.future.set_exception(BrokerRefusedError(reason))

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_exception(aiomqtt.MqttError("Operation timed out"))


async def publish_and_wait(
    client: aiomqtt.Client,
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    properties: Properties,
    confirm_within: float,
) -> None:
    """One publish; returns when the broker acknowledged it (QoS 1/2) or it was written (QoS 0).

    Same contract as aiomqtt's `publish`, minus its per-call costs that showed in profiles: it wraps the wait
    in `asyncio.wait_for` (a task each on Python 3.11) and lists every pending call to decide on a warning.
    Here a future waits in aiomqtt's table of pending publishes and one timer bounds the wait.
    """
    info = client._client.publish(topic, payload, qos, retain, properties)  # after watch_refusals(client)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
    if info.is_published():
        return
    loop = asyncio.get_running_loop()
    confirmed = _Confirmation(loop.create_future())
    pending = client._pending_publishes
    pending[info.mid] = confirmed  # type: ignore[assignment]
    timer = loop.call_later(confirm_within, confirmed.expire)
    try:
        await confirmed.future
    finally:
        timer.cancel()
        if pending.get(info.mid) is confirmed:
            del pending[info.mid]


def watch_refusals(client: aiomqtt.Client) -> None:
    """Let a publish whose PUBACK/PUBREC carries a failure reason code (0x80 or above, such as "Not
    authorized") fail with BrokerRefusedError. aiomqtt's own on_publish callback ignores the reason code (it
    only wakes the waiter); this one runs first and fails our waiter, then hands over to aiomqtt's."""
    paho = client._client
    wake_waiter = paho.on_publish
    pending = client._pending_publishes

    def on_publish(paho_client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        waiter = pending.get(mid)
        if isinstance(waiter, _Confirmation) and getattr(reason_code, "is_failure", False):
            waiter.refuse(str(reason_code))
        wake_waiter(paho_client, userdata, mid, reason_code, properties)

    paho.on_publish = on_publish


# MQTT 5, 3.2.2.3.3: a CONNACK without a Receive Maximum allows 65,535 publishes in flight.
DEFAULT_RECEIVE_MAXIMUM = 65535


def respect_receive_maximum(client: aiomqtt.Client, window: int) -> None:
    """Never have more QoS 1/2 publishes in flight than the broker announced it accepts. Call before
    connecting.

    paho sends up to its own in-flight limit whatever the broker's Receive Maximum. A broker that gets more
    answers a QoS 2 publish with "Quota exceeded" in its PUBREC, which paho also ignores: it completes the
    exchange and reports success for a message the broker dropped (seen with Mosquitto, whose default Receive
    Maximum is 20). So paho's limit is lowered once CONNACK is in, before paho sends anything queued. The
    limit cannot go through paho's setter, which refuses changes while connected.
    """
    paho = client._client
    aiomqtt_on_connect = paho.on_connect

    def on_connect(
        paho_client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None
    ) -> None:
        announced = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        paho_client._max_inflight_messages = min(window, announced or DEFAULT_RECEIVE_MAXIMUM)
        aiomqtt_on_connect(paho_client, userdata, flags, reason_code, properties)

    paho.on_connect = on_connect


def in_flight_limit(client: aiomqtt.Client) -> int:
    """paho's current limit of publishes in flight (for tests and logs)."""
    return client._client._max_inflight_messages


async def wait_disconnected(client: aiomqtt.Client) -> BaseException | None:
    """Wait until paho reports this connection gone; returns why (an MqttCodeError with the broker's reason
    code), or None for a disconnect we asked for."""
    disconnected = client._disconnected
    try:
        await asyncio.shield(disconnected)
    except aiomqtt.MqttError as exc:
        return exc
    return None


# --- Cheaper Properties (both services) ---------------------------------------------------------------------


def share_property_tables() -> bool:
    """Make `Properties(packet_type)` reuse one set of lookup tables; True when active. Idempotent.

    paho builds a `Properties` object for every PUBLISH it decodes and every PUBACK it receives, and its
    constructor rebuilds two lookup tables (about 30 entries each) every time: in the handler that was the
    largest single cost of receiving a message. paho only reads the tables after construction, so instances
    can share one copy. A paho whose instances have another shape keeps its own constructor (and check()
    says so): it only loses the speed-up.
    """
    if getattr(Properties.__init__, "shares_tables", False):
        return True
    template = _built_by_paho(PacketTypes.PUBLISH)
    if set(vars(template)) != _PROPERTIES_ATTRIBUTES:
        logger.info("paho Properties has an unexpected shape; keeping its own constructor")
        return False
    types, names, properties = template.types, template.names, template.properties

    def __init__(self: Any, packetType: int) -> None:  # paho's own signature
        # object.__setattr__: paho's __setattr__ would only forward these four names to it anyway.
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "properties", properties)

    __init__.shares_tables = True  # type: ignore[attr-defined]
    __init__.paho_init = Properties.__init__  # type: ignore[attr-defined]
    Properties.__init__ = __init__  # type: ignore[method-assign]
    return True


def _built_by_paho(packet_type: int) -> Properties:
    """A Properties built by paho's own constructor, even after share_property_tables() replaced it."""
    instance = Properties.__new__(Properties)
    getattr(Properties.__init__, "paho_init", Properties.__init__)(instance, packet_type)
    return instance


# --- What an upgrade may have moved -------------------------------------------------------------------------


async def check() -> list[str]:
    """One line per internal this module relies on that is missing or reshaped; empty when all are in place.

    Builds an aiomqtt client without connecting it (it needs a running event loop) and drives its PUBACK
    callback by hand, as paho would.
    """
    problems: list[str] = []
    client = aiomqtt.Client("127.0.0.1", identifier="internals-check")
    paho_client = getattr(client, "_client", None)
    if not isinstance(paho_client, mqtt.Client):
        problems.append(
            "aiomqtt.Client._client is no longer the paho-mqtt client (got "
            f"{type(paho_client).__name__}): manual acks and confirmed publishes reach paho through it"
        )
    else:
        problems += _check_paho_methods(paho_client)
    problems += _check_pending_publishes(client)
    if not problems:
        problems += _check_refusals(client)
        problems += _check_receive_maximum()
    if not isinstance(getattr(client, "_disconnected", None), asyncio.Future):
        problems.append(
            "aiomqtt.Client._disconnected is no longer an asyncio.Future: the publisher waits on it to "
            "notice a dropped connection at once"
        )
    template = _built_by_paho(PacketTypes.PUBLISH)
    if set(vars(template)) != _PROPERTIES_ATTRIBUTES:
        problems.append(
            f"paho Properties instances now have attributes {sorted(vars(template))}, not "
            f"{sorted(_PROPERTIES_ATTRIBUTES)}: share_property_tables() no longer applies"
        )
    return problems


def _check_paho_methods(paho_client: mqtt.Client) -> list[str]:
    expected = {
        "manual_ack_set": ["on"],
        "ack": ["mid", "qos"],
        "publish": ["topic", "payload", "qos", "retain", "properties"],
    }
    problems = []
    for name, parameters in expected.items():
        method = getattr(paho_client, name, None)
        if method is None:
            problems.append(f"paho.mqtt.client.Client.{name} is gone")
            continue
        found = list(inspect.signature(method).parameters)
        if found[: len(parameters)] != parameters:
            problems.append(
                f"paho.mqtt.client.Client.{name} now takes {found}, not {parameters} (positional, in order)"
            )
    return problems


def _check_pending_publishes(client: aiomqtt.Client) -> list[str]:
    pending = getattr(client, "_pending_publishes", None)
    if not isinstance(pending, dict):
        return [
            "aiomqtt.Client._pending_publishes is no longer a dict of message id -> event: the publisher "
            "registers its confirmations there"
        ]
    on_publish = getattr(client, "_on_publish", None)
    if on_publish is None:
        return ["aiomqtt.Client._on_publish is gone: it is what confirms a pending publish"]
    loop = asyncio.get_running_loop()
    confirmation = _Confirmation(loop.create_future())
    pending[1] = confirmation  # type: ignore[assignment]
    try:
        on_publish(client._client, None, 1, ReasonCode(PacketTypes.PUBACK), Properties(PacketTypes.PUBACK))
    except Exception as exc:  # any failure here is the message
        return [f"aiomqtt.Client._on_publish(client, userdata, mid, reason_code, properties) failed: {exc!r}"]
    if not confirmation.future.done() or 1 in pending:
        return [
            "aiomqtt.Client._on_publish no longer pops the pending publish and calls its set(): the "
            "publisher's confirmations would never arrive"
        ]
    return []


def _check_receive_maximum() -> list[str]:
    client = aiomqtt.Client("127.0.0.1", identifier="internals-check-quota", max_inflight_messages=100)
    if not isinstance(getattr(client._client, "_max_inflight_messages", None), int):
        return [
            "paho.mqtt.client.Client._max_inflight_messages is gone: the publisher lowers it to the broker's "
            "Receive Maximum"
        ]
    respect_receive_maximum(client, 100)
    connack = Properties(PacketTypes.CONNACK)
    connack.ReceiveMaximum = 20
    try:
        client._client.on_connect(
            client._client, None, mqtt.ConnectFlags(False), ReasonCode(PacketTypes.CONNACK), connack
        )
    except Exception as exc:  # any failure here is the message
        return [f"paho's on_connect(client, userdata, flags, reason_code, properties) failed: {exc!r}"]
    if in_flight_limit(client) != 20:
        return ["lowering paho's _max_inflight_messages from on_connect no longer takes effect"]
    return []


def _check_refusals(client: aiomqtt.Client) -> list[str]:
    watch_refusals(client)
    confirmation = _Confirmation(asyncio.get_running_loop().create_future())
    client._pending_publishes[2] = confirmation  # type: ignore[assignment]
    refused = ReasonCode(PacketTypes.PUBACK, identifier=0x87)  # Not authorized
    try:
        client._client.on_publish(client._client, None, 2, refused, Properties(PacketTypes.PUBACK))
    except Exception as exc:  # any failure here is the message
        return [f"paho's on_publish(client, userdata, mid, reason_code, properties) failed: {exc!r}"]
    if not confirmation.future.done() or not isinstance(confirmation.future.exception(), BrokerRefusedError):
        return [
            "a PUBACK with reason code 0x87 no longer fails the pending publish (paho's on_publish or "
            "ReasonCode.is_failure changed): refused commands would be retried instead of dead-lettered"
        ]
    return []
