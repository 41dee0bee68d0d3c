"""The aiomqtt/paho-mqtt internals the services use (apps.mqtt_service.mqtt_internals) are where they were.

After upgrading aiomqtt or paho-mqtt, this is the test that fails first, saying what moved. The other tests
here prove the check notices each kind of move, and that the services refuse to start on moved internals.
"""

import importlib.metadata
import re
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from django.core.management.base import CommandError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.mqtt_service import mqtt_internals
from apps.mqtt_service.management.commands import _service_runner

# Where the runtime requirements are declared (requirements.txt is their lock, every package of the tree).
REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.in"


async def test_the_internals_the_services_use_are_in_place():
    moved = await mqtt_internals.check()
    assert not moved, (
        "aiomqtt/paho-mqtt internals used by apps/mqtt_service/mqtt_internals.py moved; adapt that module:\n"
        + "\n".join(moved)
    )


@pytest.mark.parametrize("package", ["aiomqtt", "paho-mqtt"])
def test_both_mqtt_libraries_are_pinned_in_the_runtime_requirements(package):
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", REQUIREMENTS.read_text(), re.M))
    assert package in pins, f"{package} is used directly: pin it in requirements.in (then make lock)"
    assert pins[package] == importlib.metadata.version(package)


async def test_a_missing_paho_client_is_reported(monkeypatch):
    original_init = aiomqtt.Client.__init__

    def without_paho(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._client = object()

    monkeypatch.setattr(aiomqtt.Client, "__init__", without_paho)
    assert any("aiomqtt.Client._client" in line for line in await mqtt_internals.check())


async def test_a_reshaped_paho_method_is_reported(monkeypatch):
    monkeypatch.setattr(mqtt.Client, "ack", lambda self, message_id, quality: None)
    [moved] = await mqtt_internals.check()
    assert "Client.ack now takes ['message_id', 'quality'], not ['mid', 'qos']" in moved


async def test_a_pending_publish_table_that_is_not_confirmed_any_more_is_reported(monkeypatch):
    monkeypatch.setattr(aiomqtt.Client, "_on_publish", lambda self, *args: None)
    [moved] = await mqtt_internals.check()
    assert "_on_publish no longer pops the pending publish" in moved


async def test_a_missing_disconnected_future_is_reported(monkeypatch):
    original_init = aiomqtt.Client.__init__

    def without_future(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        del self._disconnected

    monkeypatch.setattr(aiomqtt.Client, "__init__", without_future)
    assert any("_disconnected" in line for line in await mqtt_internals.check())


async def test_reshaped_properties_are_reported_and_left_alone(monkeypatch):
    paho_init = getattr(Properties.__init__, "paho_init", Properties.__init__)

    def with_an_extra_table(self, packet_type):
        paho_init(self, packet_type)
        object.__setattr__(self, "aliases", {})

    monkeypatch.setattr(Properties, "__init__", with_an_extra_table)
    [moved] = await mqtt_internals.check()
    assert "paho Properties instances now have attributes" in moved
    assert not mqtt_internals.share_property_tables()  # a speed-up lost, nothing broken
    assert Properties(PacketTypes.PUBLISH).aliases == {}


async def test_shared_property_tables_behave_like_paho_s_own():
    assert mqtt_internals.share_property_tables()
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [("command_id", "1")]
    assert Properties(PacketTypes.PUBLISH).json() == {}  # instances share tables, not values
    assert properties.json() == {"UserProperty": [("command_id", "1")]}
    assert Properties(PacketTypes.PUBLISH).pack() == b"\x00"


async def test_the_services_refuse_to_start_on_moved_internals(monkeypatch):
    async def moved():
        return ["aiomqtt.Client._pending_publishes is no longer a dict"]

    monkeypatch.setattr(mqtt_internals, "check", moved)
    with pytest.raises(CommandError, match="_pending_publishes is no longer a dict"):
        await _service_runner._main(lambda: pytest.fail("the service must not be built"))
