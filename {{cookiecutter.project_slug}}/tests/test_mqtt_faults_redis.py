"""Redis restarts in the middle of a command stream. The test runs its own redis-server, its own Mosquitto and
an in-process publisher service, and prints lost, duplicates and the time to resume.

With the append-only file (as compose/redis/redis.conf configures it) a restart keeps the stream, its consumer
group and the pending entries: no command that was enqueued is lost. Without persistence the restart empties
Redis: the publisher re-creates its group and carries on, but commands still waiting in the stream are gone.
"""

import asyncio
from pathlib import Path

import pytest
import redis

from apps.mqtt_service.mqtt_publisher import MqttPublisher
from apps.mqtt_service.publish_queue import PublishQueue
from apps.mqtt_service.publisher_service import PublisherService
from fault_clients import PersistentSubscriber, report, stop_task, wait_until
from fault_services import HOST, Mosquitto, RedisServer, running
from mqtt_helpers import WAIT, make_scheme, stream_state, unique

pytestmark = pytest.mark.slow

OUTAGE = 5.0
RESUME_LIMIT = 5.0


async def enqueue_stream(
    commands: MqttPublisher, topic: str, total: int, rate: float, enqueued: list[tuple[float, str]]
) -> int:
    """Enqueue `total` commands at `rate`/s, retrying one Redis refused; returns how many times it refused.
    Only a command whose XADD returned counts as enqueued (with the loop time it returned)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    refused = 0
    for n in range(total):
        delay = started + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            try:
                command_id = await commands.apublish(topic=topic, payload={"n": n}, qos=1)
            except (redis.RedisError, OSError):
                refused += 1
                await asyncio.sleep(0.05)
                continue
            enqueued.append((loop.time(), command_id))
            break
    return refused


@pytest.mark.parametrize("appendonly", [True, False], ids=["appendonly", "no-persistence"])
async def test_redis_restart_during_a_command_stream(tmp_path: Path, appendonly: bool) -> None:
    total, rate = 3000, 500.0
    scheme = make_scheme()
    topic = scheme.command_topic(unique("dev"))
    enqueued: list[tuple[float, str]] = []
    async with (
        running(Mosquitto(tmp_path / "broker")) as broker,
        running(RedisServer(tmp_path / "redis", appendonly=appendonly)) as redis_server,
    ):
        queue = PublishQueue(redis_server.url(), stream=unique("faults:commands"))
        commands = MqttPublisher(queue=queue, scheme=scheme)
        device = PersistentSubscriber(broker.port, topic)
        service = PublisherService(
            queue,
            client_id=unique("fault-publisher"),
            scheme=scheme,
            mqtt_options={"hostname": HOST, "port": broker.port},
        )
        device_task = asyncio.create_task(device.run())
        service_task = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(device.subscribed.wait(), WAIT)
            await asyncio.wait_for(service.connected.wait(), WAIT)
            producer = asyncio.create_task(enqueue_stream(commands, topic, total, rate, enqueued))
            await wait_until(lambda: len(device.command_ids) >= total // 5, WAIT, "first commands delivered")
            waiting_at_stop = stream_state(queue)
            await redis_server.stop()
            await asyncio.sleep(OUTAGE)
            await redis_server.start()
            published_at_return = service.metrics.get("published")
            resumed_at = await wait_until(
                lambda: service.metrics.get("published") > published_at_return, WAIT, "publisher resumed"
            )
            refused = await asyncio.wait_for(producer, 30)
            expected = {
                command_id
                for at, command_id in enqueued
                if appendonly
                or at >= redis_server.ready_at  # without persistence: enqueued after the restart
            }
            await wait_until(lambda: expected <= set(device.command_ids), 30, "every command delivered")
            await wait_until(
                lambda: (lambda s: s["length"] == 0 and s["pending"] == 0)(stream_state(queue)),
                WAIT,
                "stream emptied",
            )
        finally:
            service.request_stop()
            await asyncio.wait_for(service_task, WAIT)
            await stop_task(device_task)
    received = [command_id for command_id in device.command_ids if command_id is not None]
    all_enqueued = {command_id for _, command_id in enqueued}
    # An XADD that Redis executed while shutting down, its reply lost: the producer saw an error and sent the
    # command again, so it is delivered under two ids. The producer enqueues one at a time: at most one.
    unconfirmed = set(received) - all_enqueued
    report(
        f"Redis restart ({'appendonly' if appendonly else 'no persistence'})",
        enqueued=len(all_enqueued),
        refused_while_down=refused,
        waiting_at_stop=waiting_at_stop["length"],
        delivered=len(received),
        lost=len(all_enqueued - set(received)),
        delivered_though_enqueue_failed=len(unconfirmed),
        duplicates=len(received) - len(set(received)),
        resume_s=f"{resumed_at - redis_server.ready_at:.2f}",
    )
    assert len(all_enqueued) == total
    assert expected <= set(received)
    if appendonly:
        assert all_enqueued <= set(received)
    assert len(unconfirmed) <= 1
    # At least once: an entry published but not yet acknowledged in Redis when it stopped comes again.
    assert len(received) - len(set(received)) <= service.window
    assert resumed_at - redis_server.ready_at < RESUME_LIMIT
