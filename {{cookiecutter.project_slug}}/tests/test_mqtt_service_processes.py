"""The services as their management commands run them: real processes, real signals."""

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest
import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service import topology
from apps.mqtt_service.metrics import metrics_key_prefix
from apps.mqtt_service.mqtt_publisher import MqttPublisher
from apps.mqtt_service.publish_queue import PublishQueue
from apps.mqtt_service.topics import DEFAULT_SCHEME
from fault_services import Mosquitto, running
from mqtt_helpers import (  # noqa: F401 - publish_queue is a fixture
    answered_history_kind,
    device_client,
    eventually,
    publish_queue,
    stream_state,
    subscribed,
    unique,
    user_property,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANAGE = PROJECT_ROOT / "src" / "manage.py"

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def current_database_name() -> str:
    return connection.settings_dict["NAME"]


@database_sync_to_async
def create_device() -> Device:
    return Device.objects.create(username=unique("dev"), name="drain test")


@database_sync_to_async
def stored_sequence_numbers(device: Device) -> list[int]:
    return [p["seq"] for p in DeviceEvent.objects.filter(device=device).values_list("payload", flat=True)]


@asynccontextmanager
async def manage_py(
    *args: str, env: dict[str, str] | None = None, separate_stderr: bool = False
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start `manage.py <args>` with the test's database; kill it if the test leaves it running."""
    child_env = dict(os.environ)
    child_env["DJANGO_ENV_FILE"] = str(PROJECT_ROOT / "tests" / "test.env")
    child_env["POSTGRES_DB"] = await current_database_name()
    child_env.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(MANAGE),
        *args,
        cwd=PROJECT_ROOT,
        env=child_env,
        # Logs go to stdout (settings.LOGGING); merge stderr so a crash shows up in the same stream.
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if separate_stderr else asyncio.subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_for_log(process: asyncio.subprocess.Process, needle: str, log: list[str]) -> None:
    async def read() -> None:
        assert process.stdout is not None
        while True:
            line = await process.stdout.readline()
            if not line:
                raise AssertionError(f"process exited before logging {needle!r}:\n" + "".join(log))
            log.append(line.decode(errors="replace"))
            if needle in log[-1]:
                return

    await asyncio.wait_for(read(), 20)


async def finish(process: asyncio.subprocess.Process, log: list[str]) -> int:
    assert process.stdout is not None
    rest = await asyncio.wait_for(process.stdout.read(), 30)
    log.append(rest.decode(errors="replace"))
    return await asyncio.wait_for(process.wait(), 5)


@pytest.mark.skipif(
    topology.INGEST_QOS == 0,
    reason="ingest QoS 0 was answered: the broker keeps nothing for a restarting handler (nothing promised)",
)
async def test_sigterm_drains_the_handler_and_a_restart_loses_nothing() -> None:
    """SIGTERM mid-stream: exit 0 after processing what was received; unacknowledged messages stay in the
    persistent session, so the next start of the same client id stores every one (at least once)."""
    kind = answered_history_kind()
    device = await create_device()
    client_id = unique("test-handler-proc")
    group = unique("g")
    # A short session expiry: the broker forgets this test's session soon after the test.
    args = ("run_mqtt_handler", "--client-id", client_id, "--shared-group", group, "--session-expiry", "30")
    total = 800  # under the local Mosquitto's default per-client queue (1000), so the broker drops nothing
    topic = DEFAULT_SCHEME.device_topic(device.username, kind)
    log: list[str] = []
    async with manage_py(*args) as handler:
        await wait_for_log(handler, "subscribed to", log)
        async with device_client() as dev:
            sending = asyncio.gather(
                *(dev.publish(topic, json.dumps({"seq": i}).encode(), qos=1) for i in range(total))
            )
            await asyncio.wait_for(_until_stored(device, at_least=50), 20)
            handler.send_signal(signal.SIGTERM)
            await asyncio.wait_for(sending, 20)
        assert await finish(handler, log) == 0, "".join(log)
    assert "drained" in "".join(log)
    first_run = await stored_sequence_numbers(device)
    assert 50 <= len(first_run)
    assert "ws_push_failed" not in "".join(log)

    log = []
    async with manage_py(*args) as handler:
        await wait_for_log(handler, "subscribed to", log)
        await asyncio.wait_for(_until_stored(device, at_least=total, distinct=True), 30)
        handler.send_signal(signal.SIGTERM)
        assert await finish(handler, log) == 0, "".join(log)
    stored = await stored_sequence_numbers(device)
    assert set(stored) == set(range(total))
    # At least once: only messages in flight at the SIGTERM can be stored twice.
    assert len(stored) - total <= 1000


async def _until_stored(device: Device, at_least: int, distinct: bool = False) -> None:
    while True:
        stored = await stored_sequence_numbers(device)
        if len(set(stored) if distinct else stored) >= at_least:
            return
        await asyncio.sleep(0.1)


async def test_publisher_command_delivers_and_stops_cleanly_on_sigterm(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    client_id = unique("test-publisher-proc")
    env = {"MQTT_PUBLISH_QUEUE": publish_queue.stream}
    publisher = MqttPublisher(queue=publish_queue)
    topic = DEFAULT_SCHEME.command_topic(unique("dev"))
    ids = [publisher.publish(topic=topic, payload={"n": i}) for i in range(200)]
    log: list[str] = []
    async with (
        subscribed(topic) as device,
        manage_py("run_mqtt_publisher", "--client-id", client_id, env=env) as proc,
    ):
        await wait_for_log(proc, "connected", log)
        messages = await device.wait_for(200, within=20)
        assert {user_property(m, "command_id") for m in messages} == set(ids)
        assert await eventually(lambda: stream_state(publish_queue)["pending"] == 0, within=10)
        proc.send_signal(signal.SIGTERM)
        assert await finish(proc, log) == 0, "".join(log)
    assert stream_state(publish_queue) == {"length": 0, "pending": 0, "dead": 0}
    [counters] = _mirrored_counters("publisher", client_id).values()
    assert counters.get("published") == "200"


async def test_mqtt_stats_prints_queue_and_replica_counters(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    publisher = MqttPublisher(queue=publish_queue)
    publisher.publish(topic=DEFAULT_SCHEME.command_topic(unique("dev")), payload="waiting")
    client = redis.Redis.from_url(settings.REDIS_PUBLISH_QUEUE_URL)
    name = f"handler:{unique('stats-test')}:4242-1700000000000"
    key = f"{metrics_key_prefix()}{name}"
    stopped = f"{key[:-1]}1"  # an earlier start that stopped mirroring an hour ago
    # The live entry is stamped ahead of time, so however slowly the command starts it is not stale yet.
    client.hset(key, mapping={"received": "7", "failed:not_json": "2", "updated_at": str(time.time() + 600)})
    client.hset(stopped, mapping={"received": "1", "updated_at": str(time.time() - 3600)})
    client.expire(key, 60)
    client.expire(stopped, 60)
    try:
        env = {"MQTT_PUBLISH_QUEUE": publish_queue.stream}
        async with manage_py("mqtt_stats", "--json", env=env, separate_stderr=True) as proc:
            out, err = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 0, err.decode()
        async with manage_py("mqtt_stats", env=env, separate_stderr=True) as proc:
            text, _ = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        client.delete(key, stopped)
        client.close()
    data = json.loads(out)
    assert data["queue"]["length"] == 1
    assert data["queue"]["dead_letters"] == 0
    assert data["replicas"][name]["received"] == "7"
    assert data["replicas"][name]["failed:not_json"] == "2"
    assert b"waiting (stream length): 1" in text
    assert b"failed:not_json: 2" in text
    lines = text.decode().splitlines()
    stopped_line = re.compile(rf"{re.escape(name[:-1])}1 \(not updated for 36\d\ds: process stopped; ")
    assert any(stopped_line.match(line) for line in lines), lines
    assert name in lines  # the live one has no such note


async def test_a_restarted_handler_starts_its_counters_from_zero(tmp_path: Path) -> None:
    """Counters belong to one process start: after a restart under the same client id, the new process
    shows none of the failures of the one before, and does not keep that one's entry alive. (A broker of
    this test's own: on the shared one, others' device messages would add failures of their own.)"""
    async with running(Mosquitto(tmp_path / "broker")) as broker:
        await _restart_and_compare_counters({"MQTT_BROKER_PORT": str(broker.port)}, broker.port)


async def _restart_and_compare_counters(env: dict[str, str], broker_port: int) -> None:
    client_id = unique("test-handler-counters")
    args = (
        "run_mqtt_handler",
        "--client-id",
        client_id,
        "--shared-group",
        unique("g"),
        "--session-expiry",
        "5",
    )
    topic = DEFAULT_SCHEME.device_topic(unique("dev"), DEFAULT_SCHEME.kinds[0])
    log: list[str] = []
    async with manage_py(*args, env=env) as handler:
        await wait_for_log(handler, "subscribed to", log)
        async with aiomqtt.Client("127.0.0.1", broker_port, protocol=aiomqtt.ProtocolVersion.V5) as device:
            for _ in range(3):
                await device.publish(topic, b"{not json", qos=1)
        await wait_for_log(handler, "not_json", log)  # the first one; the others are logged more rarely
        handler.send_signal(signal.SIGTERM)
        assert await finish(handler, log) == 0, "".join(log)
    [(first_key, first)] = _mirrored_counters("handler", client_id).items()
    assert int(first["failed:not_json"]) >= 1
    ttl_after_stop = _ttl(first_key)

    log = []
    async with manage_py(*args, env=env) as handler:
        await wait_for_log(handler, "subscribed to", log)
        await asyncio.sleep(1.5)  # the new start has mirrored (it does so at once)
        counters = _mirrored_counters("handler", client_id)
        [second] = [values for key, values in counters.items() if key != first_key]
        assert not [name for name in second if name.startswith("failed")], second
        assert second["pid"] == str(handler.pid)
        assert counters[first_key]["pid"] != second["pid"]
        assert _ttl(first_key) <= ttl_after_stop - 1  # expiring, not renewed by the new process
        handler.send_signal(signal.SIGTERM)
        assert await finish(handler, log) == 0, "".join(log)


def _ttl(key: str) -> int:
    client = redis.Redis.from_url(settings.REDIS_PUBLISH_QUEUE_URL)
    try:
        return client.ttl(key)
    finally:
        client.close()


def _mirrored_counters(role: str, client_id: str) -> dict[str, dict[str, str]]:
    """Every mirrored entry of one client id (one per process start), by Redis key."""
    client = redis.Redis.from_url(settings.REDIS_PUBLISH_QUEUE_URL)
    try:
        keys = client.keys(f"{metrics_key_prefix()}{role}:{client_id}:*")
        return {
            key.decode(): {k.decode(): v.decode() for k, v in client.hgetall(key).items()} for key in keys
        }
    finally:
        client.close()
