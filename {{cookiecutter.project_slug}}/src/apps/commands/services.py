"""Send a command to a device and follow it to its outcome.

    from apps.commands.services import send_command
    command = send_command(device, "reboot", {"delay": 5}, timeout=60)
    command.refresh_from_db(); command.state   # queued -> sent -> delivered -> succeeded | failed, ...

In async code: `command = await asend_command(device, "reboot")`.

The row is created first (state queued), then the command goes on the publisher's durable queue as a tracked
message: the publisher service reports `sent` (the broker has it) or `expired` (its deadline passed before it
could be published), the device's replies move it on (mqtt_handlers.py), and the deadline sweep (tasks.py)
ends what is left open. Every change is pushed to WebSocket as `command.state` (events.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from datetime import timedelta
from typing import Any

import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.commands.events import apush_states, push_states
from apps.commands.models import Command, CommandState
from apps.commands.transitions import Transition, apply_transitions
from apps.devices.models import Device
from apps.mqtt_service import topology
from apps.mqtt_service.batch import Batcher
from apps.mqtt_service.payloads import MAX_PAYLOAD_BYTES, PayloadRefusedError, parse_payload
from apps.mqtt_service.publish_queue import PublishQueue, Tracking
from apps.mqtt_service.topics import DEFAULT_SCHEME, TopicScheme

logger = logging.getLogger(__name__)

# The name of the publisher's outcome listener for commands (mqtt_outcomes.py).
OUTCOME_LISTENER = "commands"
MAX_NAME_LENGTH = Command._meta.get_field("name").max_length
# A week: a command still open after that is a design problem, not a slow device.
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


class InvalidCommandError(ValueError):
    """The command was refused before anything was stored or sent; the message says why."""


class CommandNotQueuedError(RuntimeError):
    """The command row exists (now `expired`, with the reason in `error`) but the queue could not take it."""


def _validate_name(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidCommandError(f"command name must be a string, got {type(name).__name__}")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidCommandError(f"command name must be 1 to {MAX_NAME_LENGTH} characters, got {len(name)}")
    if not name.isprintable():
        raise InvalidCommandError("command name must not contain control characters")
    return name


def _validate_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidCommandError(f"command params must be a JSON object, got {type(params).__name__}")
    try:
        encoded = json.dumps(params, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidCommandError(f"command params are not JSON: {exc}") from exc
    try:
        # The checks device payloads pass: what PostgreSQL's jsonb, msgpack and browsers all accept.
        parse_payload(encoded, max_bytes=MAX_PAYLOAD_BYTES)
    except PayloadRefusedError as exc:
        raise InvalidCommandError(f"command params refused: {exc}") from exc
    return params


def _validate_timeout(timeout: Any) -> int:
    if timeout is None:
        timeout = settings.COMMAND_DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise InvalidCommandError(f"command timeout must be whole seconds, got {timeout!r}")
    if not 1 <= timeout <= MAX_TIMEOUT_SECONDS:
        limit = MAX_TIMEOUT_SECONDS
        raise InvalidCommandError(f"command timeout must be 1 to {limit} seconds, got {timeout}")
    return timeout


def _validate_device(device: Any) -> Device:
    if not isinstance(device, Device) or device.pk is None:
        raise InvalidCommandError(f"a command needs a saved Device, got {device!r}")
    if not device.is_active:
        raise InvalidCommandError(f"device {device.username} is inactive: it cannot receive commands")
    return device


@database_sync_to_async
def _insert(commands: list[Command]) -> list[None]:
    Command.objects.bulk_create(commands)
    return [None] * len(commands)


_insert_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher[Command, None]] = (
    weakref.WeakKeyDictionary()
)


def _inserts() -> Batcher[Command, None]:
    """Commands created while an INSERT runs go out together in the next one (one per event loop): each
    query is a hop to Django's one sync thread, so one INSERT per command capped async senders at that."""
    loop = asyncio.get_running_loop()
    batcher = _insert_batchers.get(loop)
    if batcher is None:
        batcher = _insert_batchers[loop] = Batcher(_insert, max_batch=500, name="command-inserts")
    return batcher


class CommandSender:
    """Creates commands and queues them for the publisher service. Tests give their own queue and topics."""

    def __init__(
        self,
        queue: PublishQueue | None = None,
        scheme: TopicScheme = DEFAULT_SCHEME,
        qos: int = topology.COMMAND_QOS,
    ) -> None:
        self._queue = queue
        self.scheme = scheme
        self.qos = qos

    @property
    def queue(self) -> PublishQueue:
        # Built on first use so importing this module needs no configured settings.
        if self._queue is None:
            self._queue = PublishQueue.from_settings()
        return self._queue

    def _build(self, device: Any, name: Any, params: Any, timeout: Any, created_by: Any) -> Command:
        device = _validate_device(device)
        timeout = _validate_timeout(timeout)
        queued_at = timezone.now()
        return Command(
            id=uuid.uuid4(),
            device=device,
            name=_validate_name(name),
            params=_validate_params(params),
            timeout=timeout,
            queued_at=queued_at,
            deadline=queued_at + timedelta(seconds=timeout),
            created_by=created_by,
        )

    def _message(self, command: Command) -> tuple[str, bytes, Tracking]:
        body = {
            "id": str(command.id),
            "name": command.name,
            "params": command.params,
            "expires_at": command.deadline.isoformat(),
        }
        username = command.device.username
        tracking = Tracking(
            outcome=OUTCOME_LISTENER,
            expires_at=command.deadline.timestamp(),
            response_topic=self.scheme.device_topic(username, topology.REPLY_KIND),
            correlation_data=str(command.id).encode(),
        )
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        return self.scheme.command_topic(username), payload, tracking

    def _not_queued(self, command: Command, exc: Exception) -> Transition:
        logger.error("command %s to %s could not be queued: %r", command.id, command.device.username, exc)
        return Transition(command.id, CommandState.EXPIRED, timezone.now(), error=f"not queued: {exc!r}")

    def send(
        self,
        device: Device,
        name: str,
        params: dict[str, Any] | None = None,
        timeout: int | None = None,
        created_by: Any = None,
    ) -> Command:
        """Create the command and queue it (after the surrounding transaction commits, if there is one).

        Raises InvalidCommandError (a ValueError) for bad input, storing nothing; CommandNotQueuedError when
        Redis refused it (the command is then stored as expired, with the reason)."""
        command = self._build(device, name, params, timeout, created_by)
        command.save(force_insert=True)
        transaction.on_commit(lambda: self._enqueue(command), robust=False)
        return command

    def _enqueue(self, command: Command) -> None:
        push_states([command])
        topic, payload, tracking = self._message(command)
        try:
            self.queue.enqueue(topic, payload, self.qos, False, command_id=str(command.id), tracking=tracking)
        except (redis.RedisError, OSError) as exc:
            _, changed = apply_transitions([self._not_queued(command, exc)])
            push_states(changed)
            raise CommandNotQueuedError(f"command {command.id} could not be queued: {exc!r}") from exc

    async def asend(
        self,
        device: Device,
        name: str,
        params: dict[str, Any] | None = None,
        timeout: int | None = None,  # noqa: ASYNC109 - the device's time to answer, not this call's
        created_by: Any = None,
    ) -> Command:
        """Async twin of send() for async views, consumers and handlers."""
        command = self._build(device, name, params, timeout, created_by)
        await _inserts().submit(command)
        await apush_states([command])
        topic, payload, tracking = self._message(command)
        try:
            await self.queue.aenqueue(
                topic, payload, self.qos, False, command_id=str(command.id), tracking=tracking
            )
        except (redis.RedisError, OSError) as exc:
            _, changed = await database_sync_to_async(apply_transitions)([self._not_queued(command, exc)])
            await apush_states(changed)
            raise CommandNotQueuedError(f"command {command.id} could not be queued: {exc!r}") from exc
        return command


command_sender = CommandSender()


def send_command(
    device: Device,
    name: str,
    params: dict[str, Any] | None = None,
    timeout: int | None = None,
    created_by: Any = None,
) -> Command:
    return command_sender.send(device, name, params, timeout, created_by)


async def asend_command(
    device: Device,
    name: str,
    params: dict[str, Any] | None = None,
    timeout: int | None = None,  # noqa: ASYNC109 - the device's time to answer, not this call's
    created_by: Any = None,
) -> Command:
    return await command_sender.asend(device, name, params, timeout, created_by)
