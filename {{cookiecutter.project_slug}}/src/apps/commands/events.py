"""`command.state` pushes: every state change of a command reaches its device owner's sockets and staff."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync

from apps.commands.models import Command
from apps.commands.representation import command_json
from apps.mqtt_service.batch import Batcher
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


Push = tuple[list[str], dict[str, Any]]


async def _send(pushes: list[Push]) -> list[BaseException | None]:
    try:
        errors = await websocket_sender.asend_many(pushes)
    except Exception as exc:
        errors = [exc] * len(pushes)
    failed = [push for push, error in zip(pushes, errors, strict=True) if error is not None]
    if failed:
        # The state is stored already: a dashboard that missed the push catches up from the API.
        example = failed[0][1]["command"]["id"]
        logger.warning("command.state push failed for %d commands, e.g. %s", len(failed), example)
    return [None] * len(pushes)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher[Push, None]] = (
    weakref.WeakKeyDictionary()
)


def _batcher() -> Batcher[Push, None]:
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        # Pushes made while one batch is sent go out together: one channel-layer message per group per batch.
        batcher = _batchers[loop] = Batcher(_send, max_batch=1000, name="command-state-pushes")
    return batcher


async def apush_states(commands: Sequence[Command]) -> None:
    """One push per command (device loaded with it), batched with the other pushes of this event loop."""
    batcher = _batcher()
    await asyncio.gather(*(batcher.submit((_groups(c), state_event(c))) for c in commands))


def push_states(commands: Sequence[Command]) -> None:
    """Sync twin of apush_states, for views, tasks and the shell (one loop per call: no batcher kept)."""
    if commands:
        async_to_sync(_send)([(_groups(c), state_event(c)) for c in commands])
