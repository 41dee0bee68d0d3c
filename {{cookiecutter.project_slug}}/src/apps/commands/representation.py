"""The one JSON shape of a command: the API renders it and the `command.state` push carries it."""

from datetime import datetime
from typing import Any

from apps.commands.models import STATE_TIMESTAMPS, Command

_TIMESTAMPS = ("deadline", *STATE_TIMESTAMPS)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def command_json(command: Command) -> dict[str, Any]:
    """`device` is the device's username: select_related("device") when rendering many."""
    body: dict[str, Any] = {
        "id": str(command.id),
        "device": command.device.username,
        "name": command.name,
        "params": command.params,
        "state": command.state,
        "timeout": command.timeout,
    }
    for field in _TIMESTAMPS:
        body[field] = _iso(getattr(command, field))
    body["result"] = command.result
    body["error"] = command.error
    return body
