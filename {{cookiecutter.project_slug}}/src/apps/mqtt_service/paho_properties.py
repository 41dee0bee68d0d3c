"""Cheaper MQTT 5 property objects for paho-mqtt, the engine under aiomqtt.

paho builds a `Properties` object for every PUBLISH it decodes and for every PUBACK it receives, and its
constructor rebuilds two lookup tables (about 30 entries each) every time. In the handler that was the
largest single cost of receiving a message. The tables never change after construction (paho only reads them),
so instances can share one copy: `share_property_tables()` swaps in a constructor that does exactly that.
It checks first that the installed paho builds instances with just those attributes, and leaves paho
alone otherwise, so a future paho that changes shape only loses the speed-up.
"""

from __future__ import annotations

import logging
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

logger = logging.getLogger(__name__)

_EXPECTED_ATTRIBUTES = {"packetType", "types", "names", "properties"}


def share_property_tables() -> bool:
    """Make `Properties(packet_type)` reuse one set of lookup tables; True when active. Idempotent."""
    if getattr(Properties.__init__, "shares_tables", False):
        return True
    template = Properties(PacketTypes.PUBLISH)
    if set(vars(template)) != _EXPECTED_ATTRIBUTES:
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
    Properties.__init__ = __init__  # type: ignore[method-assign]
    return True
