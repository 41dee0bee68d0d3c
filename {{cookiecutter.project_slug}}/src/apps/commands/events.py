"""`command.state` pushes: every state change of a command reaches its device owner's sockets and staff."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync

from apps.commands.models import Command
from apps.commands.representation import command_json
from websocket.groups import STAFF_GROUP, user_group
from websocket.utils.senders import websocket_sender

logger = logging.getLogger(__name__)

EVENT_TYPE = "command.state"


def state_event(command: Command) -> dict[str, Any]:
    return {"type": EVENT_TYPE, "device": command.device.username, "command": command_json(command)}


def _groups(command: Command) -> list[str]:
    groups = [STAFF_GROUP]
    if command.device.owner_id is not None:
        groups.append(user_group(command.device.owner_id))
    return groups


async def apush_states(commands: Sequence[Command]) -> None:
    """One push per command (device loaded with it). The state is stored already: a push that fails is
    logged, and a dashboard catches up from the API."""
    if not commands:
        return
    try:
        errors = await websocket_sender.asend_many([(_groups(c), state_event(c)) for c in commands])
    except Exception:
        logger.warning("command.state push of %d commands failed", len(commands), exc_info=True)
        return
    failed = [str(c.id) for c, error in zip(commands, errors, strict=True) if error is not None]
    if failed:
        logger.warning("command.state push failed for %d commands, e.g. %s", len(failed), failed[0])


def push_states(commands: Sequence[Command]) -> None:
    """Sync twin of apush_states, for views, tasks and the shell."""
    if commands:
        async_to_sync(apush_states)(list(commands))
