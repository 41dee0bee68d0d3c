"""Client ids: what --help says is what the code does, and two processes sharing one id are told so once."""

import asyncio
import logging
from pathlib import Path

import aiomqtt
import pytest
from channels.db import database_sync_to_async
from django.core.management import load_command_class
from django.db import connection
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from apps.mqtt_service.connection import (
    SESSION_TAKEN_OVER,
    ClientIdCollisionWatch,
    client_id_for,
    session_taken_over,
)
from fault_services import ManagePy
from mqtt_helpers import eventually, unique

COLLISION_LINE = "Give each process its own id"
# How long both get to recognise the collision (a few takeovers each; more on a loaded machine), and how long
# they go on taking the session from each other afterwards without another line.
RECOGNISE_WITHIN = 30.0
AFTERWARDS_SECONDS = 3.0


def squeezed(text: str) -> str:
    """Without whitespace: argparse wraps help lines at spaces and hyphens."""
    return "".join(text.split())


@pytest.mark.parametrize(
    ("command", "role"), [("run_mqtt_handler", "handler"), ("run_mqtt_publisher", "publisher")]
)
def test_help_describes_the_client_id_the_code_uses(settings, command, role):
    settings.MQTT = {**settings.MQTT, "client_id": "", "client_id_prefix": "acme", "hostname": "box-7"}
    parser = load_command_class("apps.mqtt_service", command).create_parser("manage.py", command)
    text = squeezed(parser.format_help())
    assert client_id_for(role) == f"acme-{role}-box-7"
    assert squeezed(f"Default: MQTT_CLIENT_ID, else acme-{role}-<hostname> (here: acme-{role}-box-7)") in text
    assert squeezed(f"An id without '{role}' in it gets '-{role}' appended") in text
    settings.MQTT = {**settings.MQTT, "client_id": "plant-3"}
    assert client_id_for(role) == f"plant-3-{role}"
    assert client_id_for(role, f"{role}-a") == f"{role}-a"


def test_the_session_taken_over_disconnect_is_recognised_through_its_causes():
    taken_over = aiomqtt.MqttCodeError(ReasonCode(PacketTypes.DISCONNECT, identifier=SESSION_TAKEN_OVER))
    try:
        raise aiomqtt.MqttError("Disconnected during message iteration") from taken_over
    except aiomqtt.MqttError as exc:
        assert session_taken_over(exc)
    other = aiomqtt.MqttCodeError(ReasonCode(PacketTypes.DISCONNECT, "Keep alive timeout"))
    assert not session_taken_over(other)
    assert not session_taken_over(aiomqtt.MqttError("Operation timed out"))
    assert not session_taken_over(None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("command", "ready"), [("run_mqtt_handler", "subscribed to"), ("run_mqtt_publisher", "connected to")]
)
async def test_two_processes_with_one_client_id_are_told_once(tmp_path: Path, command, ready):
    """Both run on the shared broker with one (unique) client id and take the session from each other every
    few hundred milliseconds; each says so in one line naming the fix, not at every takeover. (Mosquitto
    closes the older connection without the "session taken over" reason code, so this exercises the
    detection by repetition; EMQX's reason code is recognised at once.)"""
    client_id = unique(f"test-collision-{command[8:]}")
    args = [command, "--client-id", client_id]
    if command == "run_mqtt_handler":
        args += ["--shared-group", unique("g"), "--session-expiry", "5"]
    env = {
        "MQTT_PUBLISH_QUEUE": f"test:{unique('collision')}:publish_queue",
        # The handlers get a copy of whatever others publish to device topics on the shared broker: they look
        # those devices up in this test's database (and skip them as unknown).
        "POSTGRES_DB": await database_sync_to_async(lambda: connection.settings_dict["NAME"])(),
    }
    first = ManagePy(tmp_path / "first", *args, env=env)
    second = ManagePy(tmp_path / "second", *args, env=env)
    try:
        await first.start(ready)
        await second.start(ready)
        processes = (first, second)
        recognised = await eventually(
            lambda: all(COLLISION_LINE in process.log() for process in processes), within=RECOGNISE_WITHIN
        )
        assert recognised, first.log() + second.log()
        await asyncio.sleep(AFTERWARDS_SECONDS)
        assert await first.terminate() == 0, first.log()
        assert await second.terminate() == 0, second.log()
    finally:
        await first.kill()
        await second.kill()
    for log in (first.log(), second.log()):
        [line] = [line for line in log.splitlines() if COLLISION_LINE in line]  # each said so once
        assert "MQTT_CLIENT_ID" in line
        assert "--client-id" in line
        assert client_id in line
        # The first takeovers look like any lost connection (the very first one may come after a long-lived
        # connection); once recognised, they are not logged again.
        before, after = log.split(line)
        assert before.count("reconnecting in") <= ClientIdCollisionWatch.SHORT_LIVED_IN_A_ROW, log
        assert "reconnecting in" not in after, log


def test_a_collision_is_reported_once_and_an_ordinary_outage_is_not_one(caplog):
    watch = ClientIdCollisionWatch("handler", "h-1")
    dropped = aiomqtt.MqttError("Disconnected during message iteration")
    with caplog.at_level(logging.ERROR, logger="apps.mqtt_service.connection"):
        # A broker that is down: connecting fails each time, nothing was ever connected.
        assert not any(watch.lost(aiomqtt.MqttError("Connection refused")) for _ in range(5))
        # Connections accepted and lost at once, again and again.
        verdicts = []
        for _ in range(6):
            watch.connected()
            verdicts.append(watch.lost(dropped))
        assert verdicts == [False, False, True, True, True, True]
        # A Redis error shortly after connecting is not a takeover.
        watch.connected()
        assert not watch.lost(ConnectionError("Redis went away"))
    assert len(caplog.records) == 1
    assert "dropped this connection 3 times in a row" in caplog.records[0].getMessage()
