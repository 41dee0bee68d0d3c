"""`manage.py simulate_devices` as a user runs it: a real process speaking the device contract."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.db import connection

from apps.devices.models import Device
from apps.mqtt_service import topology
from mqtt_helpers import mqtt_address, unique

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANAGE = PROJECT_ROOT / "src" / "manage.py"

pytestmark = pytest.mark.django_db(transaction=True)
# Bounds for a busy machine: the simulator is a Django process that starts, provisions and connects first.
WAIT = 45.0


def prefix() -> str:
    return f"sim{uuid.uuid4().hex[:8]}"


def device_topic(username: str, kind: str) -> str:
    return f"{topology.DEVICE_TOPIC_PREFIX}/{username}/{kind}"


@database_sync_to_async
def database_name() -> str:
    return connection.settings_dict["NAME"]


@contextlib.asynccontextmanager
async def simulate(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`manage.py simulate_devices <args>` on the test's database; killed if the test leaves it running."""
    env = dict(os.environ, DJANGO_ENV_FILE=str(PROJECT_ROOT / "tests" / "test.env"))
    env["POSTGRES_DB"] = await database_name()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(MANAGE),
        "simulate_devices",
        *args,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


class Watcher:
    """Subscribes to everything the simulated devices publish, like the backend would."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[tuple[str, dict]] = []

    async def collect(self) -> None:
        async for message in self.client.messages:
            self.seen.append((message.topic.value, json.loads(message.payload)))

    def on(self, topic: str) -> list[dict]:
        return [payload for seen_topic, payload in self.seen if seen_topic == topic]

    async def wait_for(self, topic: str, count: int = 1, within: float = WAIT) -> list[dict]:
        for _ in range(int(within / 0.05)):
            if len(self.on(topic)) >= count:
                break
            await asyncio.sleep(0.05)
        return self.on(topic)


async def watching(usernames: list[str]) -> tuple[aiomqtt.Client, Watcher, asyncio.Task]:
    host, port = mqtt_address()
    client = aiomqtt.Client(host, port, identifier=unique("sim-watch"), protocol=aiomqtt.ProtocolVersion.V5)
    await client.__aenter__()
    for username in usernames:
        await client.subscribe(f"{topology.DEVICE_TOPIC_PREFIX}/{username}/#", qos=1)
    watcher = Watcher(client)
    return client, watcher, asyncio.create_task(watcher.collect())


async def stop_watching(client: aiomqtt.Client, task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.__aexit__(None, None, None)


async def send_command(username: str, command_id: str, name: str = "reboot") -> None:
    host, port = mqtt_address()
    async with aiomqtt.Client(
        host, port, identifier=unique("sim-cmd"), protocol=aiomqtt.ProtocolVersion.V5
    ) as c:
        payload = {
            "id": command_id,
            "name": name,
            "params": {"delay": 1},
            "expires_at": "2099-01-01T00:00:00Z",
        }
        await c.publish(f"{topology.COMMAND_TOPIC_PREFIX}/{username}", json.dumps(payload), qos=1)


@pytest.mark.parametrize("replies", ["ok", "error", "silent"])
async def test_a_fleet_announces_itself_sends_every_kind_answers_commands_and_says_goodbye(
    make_user, replies: str
) -> None:
    owner = await database_sync_to_async(make_user)()
    name = prefix()
    usernames = [f"{name}-0001", f"{name}-0002"]
    client, watcher, task = await watching(usernames)
    try:
        async with simulate(
            *("--count", "2", "--rate", "40", "--owner", owner.username, "--prefix", name),
            *("--replies", replies, "--reply-delay", "0.1"),
        ) as process:
            for username in usernames:
                online = await watcher.wait_for(device_topic(username, topology.PRESENCE_KIND))
                assert online and online[0]["online"] is True and online[0]["conn"]
            await send_command(usernames[0], "cmd-1")
            await send_command(usernames[0], "cmd-1")  # redelivered: answered once
            reply_topic = device_topic(usernames[0], topology.REPLY_KIND)
            expected = {
                "ok": [("cmd-1", "received"), ("cmd-1", "ok")],
                "error": [("cmd-1", "received"), ("cmd-1", "error")],
            }.get(replies, [])
            # A silent device answers nothing: give a wrong answer a few seconds to show up.
            await watcher.wait_for(reply_topic, count=len(expected) or 1, within=WAIT if expected else 3.0)
            for username in usernames:
                for kind in topology.DEVICE_MESSAGE_KINDS:
                    assert await watcher.wait_for(device_topic(username, kind)), (username, kind)
            process.send_signal(signal.SIGINT)  # Ctrl-C
            output, _ = await asyncio.wait_for(process.communicate(), WAIT)
            assert process.returncode == 0, output.decode()
            assert b"stopped:" in output
            assert [(reply["id"], reply["status"]) for reply in watcher.on(reply_topic)] == expected
            for username in usernames:
                for kind in topology.DEVICE_MESSAGE_KINDS:
                    assert all(
                        isinstance(message, dict) for message in watcher.on(device_topic(username, kind))
                    )
                presence = await watcher.wait_for(device_topic(username, topology.PRESENCE_KIND), count=2)
                assert [p["online"] for p in presence] == [True, False], presence
                assert presence[0]["conn"] == presence[1]["conn"]
    finally:
        await stop_watching(client, task)
    devices = await database_sync_to_async(lambda: list(Device.objects.filter(username__in=usernames)))()
    assert sorted(d.username for d in devices) == usernames
    assert {d.owner_id for d in devices} == {owner.pk}
    assert all(d.password_hash for d in devices)


async def test_a_killed_simulator_leaves_each_device_s_last_will() -> None:
    name = prefix()
    username = f"{name}-0001"
    client, watcher, task = await watching([username])
    try:
        async with simulate("--count", "1", "--rate", "5", "--prefix", name) as process:
            presence_topic = device_topic(username, topology.PRESENCE_KIND)
            assert await watcher.wait_for(presence_topic)
            process.send_signal(signal.SIGKILL)
            await process.wait()
        # The broker publishes the will once it notices the dead connection (at once: the socket closed).
        presence = await watcher.wait_for(presence_topic, count=2)
        assert [p["online"] for p in presence] == [True, False]
        assert presence[1]["conn"] == presence[0]["conn"]
    finally:
        await stop_watching(client, task)


def test_csv_credentials_are_used_as_given(tmp_path: Path) -> None:
    credentials = tmp_path / "fleet.csv"
    credentials.write_text("username,password\nsensor-a,first-secret\n\nsensor-b,second,with,commas\n")
    from apps.simulator.credentials import read_csv

    assert [(c.username, c.password) for c in read_csv(credentials)] == [
        ("sensor-a", "first-secret"),
        ("sensor-b", "second"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kinds", "no_such_kind"], "unknown kinds"),
        (["--owner", "nobody-by-this-name"], "no user named"),
        (["--count", "0"], "--count must be at least 1"),
        (["--rate", "0"], "must be positive"),
        (["--prefix", "Bad Prefix"], "username"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("simulate_devices", *args, "--duration", "0")


def test_a_bad_csv_row_names_its_line(tmp_path: Path) -> None:
    credentials = tmp_path / "fleet.csv"
    credentials.write_text("sensor-a,secret\nsensor-b\n")
    with pytest.raises(CommandError, match=r"fleet.csv:2: expected username,password"):
        call_command("simulate_devices", "--csv", str(credentials), "--duration", "0")
