"""mqtt_publisher validates before enqueueing: an invalid command never reaches the stream."""

import json
import math

import pytest
import redis

from apps.mqtt_service.mqtt_publisher import MqttPublisher
from apps.mqtt_service.publish_queue import PublishQueue, decode_entry
from apps.mqtt_service.topics import TopicScheme
from mqtt_helpers import make_scheme, publish_queue, stream_state  # noqa: F401 - fixture


@pytest.fixture
def scheme() -> TopicScheme:
    return make_scheme()


@pytest.fixture
def publisher(publish_queue: PublishQueue, scheme: TopicScheme) -> MqttPublisher:  # noqa: F811
    return MqttPublisher(queue=publish_queue, scheme=scheme, default_qos=1)


def entries(queue: PublishQueue) -> list[tuple[bytes, dict[bytes, bytes]]]:
    client = redis.Redis.from_url(queue.url)
    try:
        return client.xrange(queue.stream)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"topic": ""}, ValueError),
        ({"topic": "{cmd}/+"}, ValueError),
        ({"topic": "{cmd}/#"}, ValueError),
        ({"topic": "$SYS/x"}, ValueError),
        ({"topic": "elsewhere/dev"}, ValueError),
        ({"topic": "{cmd}/"}, ValueError),
        ({"topic": "{cmd}/dev_b\n"}, ValueError),
        ({"topic": "{cmd}/dev\tb"}, ValueError),
        ({"topic": "{cmd}/dev\x7f"}, ValueError),
        ({"topic": "{cmd}/dev_a/extra"}, ValueError),
        ({"topic": "{cmd}//dev_a"}, ValueError),
        ({"topic": "{cmd}/Dev_A"}, ValueError),
        ({"topic": "{cmd}/_dev"}, ValueError),
        ({"topic": "{cmd}/" + "a" * 65}, ValueError),
        ({"topic": "{cmd}/admin"}, ValueError),
        ({"topic": "{cmd}/svc_handler"}, ValueError),
        ({"topic": " {cmd}/dev-1"}, ValueError),
        ({"topic": "{cmd}"}, ValueError),
        ({"topic": 42}, TypeError),
        ({"qos": 3}, ValueError),
        ({"qos": -1}, ValueError),
        ({"qos": True}, TypeError),
        ({"qos": "1"}, TypeError),
        ({"retain": "yes"}, TypeError),
        ({"payload": {1, 2}}, TypeError),
        ({"payload": object()}, TypeError),
        ({"payload": 12.5}, TypeError),
        ({"payload": None}, TypeError),
        ({"payload": {"when": object()}}, TypeError),
        ({"payload": {"x": math.nan}}, TypeError),
        ({"payload": "\ud800"}, ValueError),
    ],
)
def test_invalid_command_raises_and_enqueues_nothing(
    publisher: MqttPublisher,
    publish_queue: PublishQueue,  # noqa: F811
    scheme: TopicScheme,
    kwargs: dict[str, object],
    error: type[Exception],
) -> None:
    call: dict[str, object] = {"topic": f"{scheme.command_prefix}/dev-1", "payload": {"cmd": "reboot"}}
    call.update(kwargs)
    if isinstance(call["topic"], str):
        call["topic"] = call["topic"].replace("{cmd}", scheme.command_prefix)
    with pytest.raises(error):
        publisher.publish(**call)  # type: ignore[arg-type]
    assert stream_state(publish_queue)["length"] == 0


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"cmd": "reboot", "delay": 5}, b'{"cmd":"reboot","delay":5}'),
        ([1, "two"], b'[1,"two"]'),
        ("plain text \u00e9", "plain text \u00e9".encode()),
        (b"\x00\xffraw", b"\x00\xffraw"),
    ],
)
def test_valid_command_is_enqueued_with_its_fields(
    publisher: MqttPublisher,
    publish_queue: PublishQueue,  # noqa: F811
    scheme: TopicScheme,
    payload: object,
    expected: bytes,
) -> None:
    topic = f"{scheme.command_prefix}/dev-1"
    command_id = publisher.publish(topic=topic, payload=payload, retain=True)
    [(entry_id, fields)] = entries(publish_queue)
    command = decode_entry(entry_id, fields)
    assert len(command_id) == 32 and int(command_id, 16) >= 0
    assert command.command_id == command_id
    assert command.topic == topic
    assert command.payload == expected
    assert command.qos == 1  # the default QoS
    assert command.retain is True


async def test_apublish_enqueues_without_blocking(
    publisher: MqttPublisher,
    publish_queue: PublishQueue,  # noqa: F811
    scheme: TopicScheme,
) -> None:
    command_id = await publisher.apublish(topic=f"{scheme.command_prefix}/dev-2", payload={"a": 1}, qos=2)
    [(entry_id, fields)] = entries(publish_queue)
    command = decode_entry(entry_id, fields)
    assert command.command_id == command_id
    assert command.qos == 2
    assert json.loads(command.payload) == {"a": 1}
    with pytest.raises(ValueError):
        await publisher.apublish(topic=f"{scheme.command_prefix}/+", payload={})
    assert stream_state(publish_queue)["length"] == 1
