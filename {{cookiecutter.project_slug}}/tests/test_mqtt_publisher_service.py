"""Commands go publish() -> Redis stream -> publisher service -> real broker -> a subscribed device, and leave
the stream only once the broker acknowledged them."""

import asyncio
from pathlib import Path

import aiomqtt
import pytest
import redis

from apps.mqtt_service.mqtt_publisher import MqttPublisher
from apps.mqtt_service.publish_queue import PublishQueue, QueuedCommand, build_fields
from apps.mqtt_service.publisher_service import PublisherService
from fault_services import HOST, Mosquitto, running
from mqtt_helpers import (  # noqa: F401 - publish_queue is a fixture
    KINDS,
    eventually,
    make_scheme,
    publish_queue,
    running_publisher,
    stream_state,
    subscribed,
    unique,
    user_property,
)


async def wait_until_empty(queue: PublishQueue, within: float = 10.0) -> dict[str, int]:
    await eventually(lambda: (lambda s: s["length"] == 0 and s["pending"] == 0)(stream_state(queue)), within)
    return stream_state(queue)


async def test_command_reaches_the_device_with_its_id_and_is_acknowledged(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    scheme = make_scheme()
    publisher = MqttPublisher(queue=publish_queue, scheme=scheme)
    topic = scheme.command_topic(unique("dev"))
    async with subscribed(topic) as device, running_publisher(publish_queue, scheme):
        command_id = await publisher.apublish(topic=topic, payload={"cmd": "reboot"}, qos=1)
        [message] = await device.wait_for(1)
        assert message.payload == b'{"cmd":"reboot"}'
        assert message.qos == 1
        assert user_property(message, "command_id") == command_id
        assert await wait_until_empty(publish_queue) == {"length": 0, "pending": 0, "dead": 0}


async def test_sync_publish_before_the_service_starts_is_delivered(publish_queue: PublishQueue) -> None:  # noqa: F811
    scheme = make_scheme()
    publisher = MqttPublisher(queue=publish_queue, scheme=scheme)
    topic = scheme.command_topic(unique("dev"))
    async with subscribed(topic) as device:
        # Enqueued before any publisher created the consumer group: the group starts at the stream's start.
        ids = [
            await asyncio.to_thread(publisher.publish, topic=topic, payload=f"n{i}", qos=qos)
            for i, qos in enumerate((0, 1, 2))
        ]
        async with running_publisher(publish_queue, scheme):
            messages = await device.wait_for(3)
            assert sorted(user_property(m, "command_id") for m in messages) == sorted(ids)
            assert await wait_until_empty(publish_queue) == {"length": 0, "pending": 0, "dead": 0}


# QoS 2 too: the shared test broker accepts 20 publishes in flight (Mosquitto's default Receive Maximum),
# fewer than the publisher's window, and silently drops a QoS 2 publish past that quota.
@pytest.mark.parametrize("qos", [1, 2])
async def test_a_thousand_commands_are_each_delivered_once(publish_queue: PublishQueue, qos: int) -> None:  # noqa: F811
    scheme = make_scheme()
    publisher = MqttPublisher(queue=publish_queue, scheme=scheme)
    topic = scheme.command_topic(unique("dev"))
    async with subscribed(topic) as device, running_publisher(publish_queue, scheme) as service:
        commands = (publisher.apublish(topic=topic, payload={"n": i}, qos=qos) for i in range(1000))
        ids = await asyncio.gather(*commands)
        messages = await device.wait_for(1000, within=30)
        await asyncio.sleep(0.3)  # a duplicate would arrive right behind
        received = [user_property(m, "command_id") for m in device.messages]
        assert len(received) == 1000 == len(set(received))
        assert set(received) == set(ids)
        assert len(messages) == 1000
        assert await wait_until_empty(publish_queue) == {"length": 0, "pending": 0, "dead": 0}
        assert service.metrics.get("published") == 1000


async def test_two_replicas_share_one_queue_and_publish_nothing_twice(publish_queue: PublishQueue) -> None:  # noqa: F811
    scheme = make_scheme()
    publisher = MqttPublisher(queue=publish_queue, scheme=scheme)
    topic = scheme.command_topic(unique("dev"))
    async with (
        subscribed(topic) as device,
        running_publisher(publish_queue, scheme) as first,
        running_publisher(publish_queue, scheme) as second,
    ):
        # 1,000: the local test broker queues at most 1,000 messages for one subscriber (its default).
        ids = await asyncio.gather(*(publisher.apublish(topic=topic, payload={"n": i}) for i in range(1000)))
        await device.wait_for(1000, within=30)
        await asyncio.sleep(0.3)  # a duplicate would arrive right behind
        received = [user_property(m, "command_id") for m in device.messages]
        assert sorted(received) == sorted(ids)
        assert await wait_until_empty(publish_queue) == {"length": 0, "pending": 0, "dead": 0}
        # Both replicas took part: the consumer group spreads the entries between them.
        assert first.metrics.get("published") > 0
        assert second.metrics.get("published") > 0
        assert first.metrics.get("published") + second.metrics.get("published") == 1000


async def test_entries_of_a_dead_replica_are_claimed_and_published(publish_queue: PublishQueue) -> None:  # noqa: F811
    scheme = make_scheme()
    publisher = MqttPublisher(queue=publish_queue, scheme=scheme)
    topic = scheme.command_topic(unique("dev"))
    client = redis.Redis.from_url(publish_queue.url)
    client.xgroup_create(publish_queue.stream, publish_queue.group, id="0", mkstream=True)
    command_id = publisher.publish(topic=topic, payload={"cmd": "orphan"})
    # A replica reads the entry and dies before publishing it: the entry stays pending under its name.
    taken = client.xreadgroup(publish_queue.group, "dead-replica", {publish_queue.stream: ">"}, count=10)
    assert len(taken[0][1]) == 1
    client.close()
    async with (
        subscribed(topic) as device,
        running_publisher(publish_queue, scheme, claim_idle_ms=200, claim_interval=0.2) as service,
    ):
        [message] = await device.wait_for(1)
        assert user_property(message, "command_id") == command_id
        assert await wait_until_empty(publish_queue) == {"length": 0, "pending": 0, "dead": 0}
        assert service.metrics.get("retried") == 1


async def test_entry_delivered_too_often_goes_to_dead_letters_with_reason(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    scheme = make_scheme()
    publisher = MqttPublisher(queue=publish_queue, scheme=scheme)
    topic = scheme.command_topic(unique("dev"))
    client = redis.Redis.from_url(publish_queue.url)
    client.xgroup_create(publish_queue.stream, publish_queue.group, id="0", mkstream=True)
    publisher.publish(topic=topic, payload={"cmd": "cursed"})
    [[_, [(entry_id, _)]]] = client.xreadgroup(
        publish_queue.group, "crashing-replica", {publish_queue.stream: ">"}
    )
    for _ in range(3):  # three more replicas took it and crashed: 4 deliveries so far
        client.xclaim(publish_queue.stream, publish_queue.group, "crashing-replica", 0, [entry_id])
    async with (
        subscribed(topic) as device,
        running_publisher(
            publish_queue, scheme, claim_idle_ms=100, claim_interval=0.2, max_deliveries=4
        ) as service,
    ):
        await eventually(lambda: stream_state(publish_queue)["dead"] > 0, within=10)
        assert device.messages == []
        # Counted once Redis answered the dead-letter transaction: wait for the count, not only the stream.
        assert await eventually(lambda: service.metrics.get("dead_lettered") == 1)
    [(_, dead)] = client.xrange(publish_queue.dead_letter_stream)
    client.close()
    assert dead[b"topic"] == topic.encode()
    assert dead[b"source_entry_id"] == entry_id
    assert b"not delivered after 4 attempts" in dead[b"reason"]
    assert stream_state(publish_queue) == {"length": 0, "pending": 0, "dead": 1}


async def test_malformed_entry_is_dead_lettered_and_the_rest_still_flows(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    scheme = make_scheme()
    topic = scheme.command_topic(unique("dev"))
    client = redis.Redis.from_url(publish_queue.url)
    client.xadd(publish_queue.stream, {"topic": topic, "payload": b"no id, no qos"})
    client.xadd(publish_queue.stream, build_fields("good-one", topic, b"ok", 1, False))
    async with subscribed(topic) as device, running_publisher(publish_queue, scheme):
        [message] = await device.wait_for(1)
        assert user_property(message, "command_id") == "good-one"
        state = await wait_until_empty(publish_queue)
    [(_, dead)] = client.xrange(publish_queue.dead_letter_stream)
    client.close()
    assert dead[b"reason"].startswith(b"malformed entry")
    assert state == {"length": 0, "pending": 0, "dead": 1}


class FlakyBrokerPublisher(PublisherService):
    """Publishes of `poison` fail the way a dropped connection makes them fail; everything else is real."""

    poison = "never-acknowledged"

    async def _send(self, client: aiomqtt.Client, command: QueuedCommand) -> None:
        if command.payload == self.poison.encode():
            raise aiomqtt.MqttError("Operation timed out")
        await super()._send(client, command)


@pytest.mark.parametrize("max_deliveries", [2])
async def test_entry_that_keeps_failing_is_retried_then_dead_lettered(
    publish_queue: PublishQueue,  # noqa: F811
    max_deliveries: int,
) -> None:
    scheme = make_scheme()
    publisher = MqttPublisher(queue=publish_queue, scheme=scheme)
    topic = scheme.command_topic(unique("dev"))
    async with (
        subscribed(topic) as device,
        running_publisher(
            publish_queue, scheme, FlakyBrokerPublisher, max_deliveries=max_deliveries
        ) as service,
    ):
        publisher.publish(topic=topic, payload=FlakyBrokerPublisher.poison)
        good_id = publisher.publish(topic=topic, payload="fine")
        [message] = await device.wait_for(1)
        assert user_property(message, "command_id") == good_id
        await eventually(lambda: stream_state(publish_queue)["dead"] > 0, within=15)
        assert service.metrics.get("publish_failed") == max_deliveries
        assert service.metrics.get("retried") == max_deliveries - 1
    assert stream_state(publish_queue) == {"length": 0, "pending": 0, "dead": 1}
    assert [m.payload for m in device.messages] == [b"fine"]


async def test_bad_entries_among_valid_commands_are_dead_lettered_alone_and_the_rest_delivered(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    """Entries written to the stream around publish()'s checks, with topics a broker treats as a malformed
    packet (dropping the connection and every command in flight) or that no device can have: each is
    dead-lettered at once with its reason; the 40 valid commands queued around them all arrive, and the
    publisher never loses its connection."""
    scheme = make_scheme()
    topic = scheme.command_topic(unique("dev"))
    cmd = scheme.command_prefix
    bad_topics: list[str | bytes] = [
        f"{cmd}/dev_b\n",
        f"{cmd}/dev_a/extra",
        f"{cmd}/+",
        f"{cmd}/#",
        f"{cmd}/",
        f"{cmd}/a\x00b",
        f"{cmd}/Dev",
        f"{scheme.device_prefix}/dev_a/{KINDS[0]}",
        f"{cmd}/dev_a".encode() + b"\xff",
    ]
    client = redis.Redis.from_url(publish_queue.url)
    valid_ids = []
    for n in range(40):
        valid_ids.append(f"valid-{n}")
        client.xadd(publish_queue.stream, build_fields(f"valid-{n}", topic, f"n{n}".encode(), 1, False))
        if n % 4 == 0 and bad_topics:
            client.xadd(publish_queue.stream, build_fields(f"bad-{n}", bad_topics.pop(), b"x", 1, False))
    assert not bad_topics
    async with subscribed(topic) as device, running_publisher(publish_queue, scheme) as service:
        await device.wait_for(40)
        # Counted once Redis answered the dead-letter transaction: wait for the count, not only the stream.
        assert await eventually(lambda: service.metrics.get("dead_lettered") == 9)
        state = await wait_until_empty(publish_queue)
        assert service.metrics.get("retried") == service.metrics.get("publish_failed") == 0
    dead = [fields for _, fields in client.xrange(publish_queue.dead_letter_stream)]
    client.close()
    assert sorted(user_property(m, "command_id") for m in device.messages) == sorted(valid_ids)
    assert state == {"length": 0, "pending": 0, "dead": 9}
    assert all(d[b"id"].startswith(b"bad-") and d[b"deliveries"] == b"1" for d in dead)
    reasons = sorted(d[b"reason"].split(b":")[0] for d in dead)
    assert reasons == [b"invalid topic"] * 8 + [b"malformed entry"]


class BrokerWithAcl(Mosquitto):
    """Our own Mosquitto that refuses publishes to one topic (MQTT 5: PUBACK reason 0x87)."""

    def __init__(self, workdir: Path, refused_topic: str) -> None:
        super().__init__(workdir)
        self.acl_path = workdir / "acl"
        self.acl_path.write_text(f"topic deny {refused_topic}\ntopic readwrite #\n")

    def command(self) -> list[str]:
        command = super().command()
        conf = Path(command[-1])
        conf.write_text(conf.read_text() + f"acl_file {self.acl_path}\n")
        return command


async def test_a_command_the_broker_refuses_is_dead_lettered_alone_with_the_brokers_reason(
    tmp_path: Path,
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    scheme = make_scheme()
    publisher = MqttPublisher(queue=publish_queue, scheme=scheme)
    refused, accepted = scheme.command_topic(unique("dev")), scheme.command_topic(unique("dev"))
    async with running(BrokerWithAcl(tmp_path / "broker", refused)) as broker:
        options = {"mqtt_options": {"hostname": HOST, "port": broker.port}}
        ids = []
        for n in range(10):
            ids.append(await publisher.apublish(topic=accepted, payload={"n": n}, qos=1 + n % 2))
            if n in (2, 6):
                # QoS 1: Mosquitto answers the PUBACK with 0x87. (For QoS 2 it answers PUBREC with success
                # and drops the message: the protocol gives a client nothing to notice then.)
                await publisher.apublish(topic=refused, payload={"n": n}, qos=1)
        async with running_publisher(publish_queue, scheme, **options) as service:
            await eventually(
                lambda: service.metrics.get("published") == 10 and stream_state(publish_queue)["dead"] == 2
            )
            state = await wait_until_empty(publish_queue)
            assert service.metrics.get("retried") == service.metrics.get("publish_failed") == 0
    client = redis.Redis.from_url(publish_queue.url)
    dead = [fields for _, fields in client.xrange(publish_queue.dead_letter_stream)]
    client.close()
    assert state == {"length": 0, "pending": 0, "dead": 2}
    assert {d[b"topic"] for d in dead} == {refused.encode()}
    assert all(d[b"reason"] == b"refused by broker: Not authorized" for d in dead)
