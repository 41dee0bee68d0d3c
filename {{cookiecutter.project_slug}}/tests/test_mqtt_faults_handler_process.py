"""The handler as `manage.py run_mqtt_handler` runs it, against its own Mosquitto and Redis: killed with
SIGKILL mid-stream, and cut off from PostgreSQL for a few seconds. Both print what they measured."""

import asyncio
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service.topics import DEFAULT_SCHEME
from fault_clients import (
    RetryingDevice,
    create_device,
    loss_and_duplicates,
    report,
    stop_task,
    stored_sequence_numbers,
)
from fault_services import ManagePy, Mosquitto, RedisServer, TcpProxy, running
from mqtt_helpers import WAIT, answered_history_kind, unique

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RESUME_LIMIT = 5.0
# The handler's receive maximum: the most messages the broker hands it before any acknowledgement.
RECEIVE_MAXIMUM = 1000


@database_sync_to_async
def stored_count(device: Device) -> int:
    return DeviceEvent.objects.filter(device=device).count()


@database_sync_to_async
def current_database_name() -> str:
    return connection.settings_dict["NAME"]


async def handler_command(
    workdir: Path, broker: Mosquitto, redis_server: RedisServer, **env: str
) -> ManagePy:
    """run_mqtt_handler on this test's broker, Redis (channel layer, counters) and database."""
    client_id = unique("fault-handler-proc")
    child_env = {
        "POSTGRES_DB": await current_database_name(),
        "MQTT_BROKER_PORT": str(broker.port),
        "REDIS_PORT": str(redis_server.port),
        "CHANNEL_LAYER_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        **env,
    }
    return ManagePy(
        workdir, "run_mqtt_handler", "--client-id", client_id, "--session-expiry", "600", env=child_env
    )


async def until_stored_count(device: Device, more_than: int, within: float, what: str) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (count := await stored_count(device)) <= more_than:
        if loop.time() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what} ({count} stored)")
        await asyncio.sleep(0.02)
    return count


async def until_all_stored(device: Device, total: int, within: float) -> list[int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        stored = await stored_sequence_numbers(device)
        if len(set(stored)) >= total:
            return stored
        if loop.time() > deadline:
            raise AssertionError(f"only {len(set(stored))}/{total} distinct messages stored")
        await asyncio.sleep(0.1)


async def test_sigkill_of_the_handler_loses_no_message_the_broker_delivered(tmp_path: Path) -> None:
    """Manual acknowledgement after the database write plus a persistent session: a handler killed with
    SIGKILL loses nothing; the restarted replica (same client id) gets the unacknowledged messages again."""
    kind = answered_history_kind()
    total, rate = 20_000, 5_000.0
    device_row = await create_device()
    async with (
        running(Mosquitto(tmp_path / "broker")) as broker,
        running(RedisServer(tmp_path / "redis")) as redis_server,
    ):
        handler = await handler_command(tmp_path / "handler", broker, redis_server)
        device = RetryingDevice(
            broker.port, DEFAULT_SCHEME.device_topic(device_row.username, kind), total, rate, window=200
        )
        device_task: asyncio.Task[None] | None = None
        try:
            await handler.start("subscribed to")
            device_task = asyncio.create_task(device.run())
            loop = asyncio.get_running_loop()
            stored_before_kill = await until_stored_count(device_row, total // 5, WAIT, "first messages")
            await handler.kill()
            killed_at = loop.time()
            # The kill went through mid-stream: the broker had delivered messages not yet stored.
            await asyncio.sleep(0.5)
            stored_after_kill = await stored_count(device_row)
            await handler.start("subscribed to")
            restarted_at = loop.time()
            await asyncio.wait_for(device_task, 30)
            stored = await until_all_stored(device_row, total, within=45)
            finished_at = loop.time()
            assert await handler.terminate() == 0, handler.log()[-3000:]
        finally:
            if device_task is not None:
                await stop_task(device_task)
            await handler.kill()
    lost, duplicates = loss_and_duplicates(device.accepted, stored)
    report(
        "SIGKILL of a handler",
        accepted=len(device.accepted),
        stored_when_killed=stored_before_kill,
        stored_0_5s_after_kill=stored_after_kill,
        stored=len(stored),
        lost=lost,
        duplicates=duplicates,
        down_s=f"{restarted_at - killed_at:.2f}",
        caught_up_s=f"{finished_at - restarted_at:.2f}",
    )
    assert stored_before_kill < total  # killed mid-stream, not after the end
    assert device.accepted == set(range(total))
    assert lost == 0
    # Only what the killed process had received but not yet acknowledged comes again: at most the
    # broker's window towards it (its receive maximum).
    assert duplicates <= RECEIVE_MAXIMUM


async def test_database_unreachable_for_seconds_loses_nothing_and_the_handler_resumes(tmp_path: Path) -> None:
    """PostgreSQL refuses connections for 4 s (a proxy in front of it closes): the handler keeps the
    messages unacknowledged and retries, stores everything, and resumes as soon as the database is back."""
    kind = answered_history_kind()
    total, rate = 3000, 500.0
    device_row = await create_device()
    database = settings.DATABASES["default"]
    proxy = TcpProxy(database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432))
    proxy.open()
    try:
        async with (
            running(Mosquitto(tmp_path / "broker")) as broker,
            running(RedisServer(tmp_path / "redis")) as redis_server,
        ):
            handler = await handler_command(
                tmp_path / "handler",
                broker,
                redis_server,
                POSTGRES_HOST="127.0.0.1",
                POSTGRES_PORT=str(proxy.port),
            )
            device = RetryingDevice(
                broker.port, DEFAULT_SCHEME.device_topic(device_row.username, kind), total, rate
            )
            device_task: asyncio.Task[None] | None = None
            try:
                await handler.start("subscribed to")
                device_task = asyncio.create_task(device.run())
                loop = asyncio.get_running_loop()
                await until_stored_count(device_row, total // 5, WAIT, "first messages")
                proxy.close()
                await asyncio.sleep(4)
                stored_at_return = await stored_count(device_row)
                proxy.open()
                returned_at = loop.time()
                await until_stored_count(device_row, stored_at_return, WAIT, "handler resumed writing")
                resumed_at = loop.time()
                await asyncio.wait_for(device_task, 30)
                stored = await until_all_stored(device_row, total, within=30)
                assert await handler.terminate() == 0, handler.log()[-3000:]
            finally:
                if device_task is not None:
                    await stop_task(device_task)
                await handler.kill()
    finally:
        proxy.shutdown()
    log = handler.log()
    lost, duplicates = loss_and_duplicates(device.accepted, stored)
    report(
        "PostgreSQL unreachable 4 s",
        accepted=len(device.accepted),
        stored=len(stored),
        lost=lost,
        duplicates=duplicates,
        resume_s=f"{resumed_at - returned_at:.2f}",
        retries_logged=log.count("database unreachable"),
    )
    assert "database unreachable" in log  # the outage really hit the handler
    assert device.accepted == set(range(total))
    assert lost == 0
    # A batch whose commit reached the database but whose answer was cut off is written again.
    assert duplicates <= RECEIVE_MAXIMUM
    assert resumed_at - returned_at < RESUME_LIMIT
