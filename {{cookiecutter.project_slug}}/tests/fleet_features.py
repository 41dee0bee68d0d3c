"""Which parts of the fleet domain this project has: the browser tests check a step only where its part
exists (presence handling, the JSON API, the commands service), and say which steps they left unchecked."""

from __future__ import annotations

import importlib.util

from django.urls import Resolver404, resolve


def _api_served() -> bool:
    try:
        resolve("/api/devices/")
    except Resolver404:
        return False
    return True


FEATURES = {
    # online/offline from the devices' presence messages and Last Wills
    "presence": importlib.util.find_spec("apps.devices.mqtt_handlers") is not None,
    # resync after a reconnect, the command form
    "api": _api_served(),
    "commands": importlib.util.find_spec("apps.commands.services") is not None,
}
