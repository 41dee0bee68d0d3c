"""send_command and the state rules, against the real database and Redis stream (no broker needed)."""

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.api.serializers import CommandSerializer
from apps.commands.models import Command, CommandState
from apps.commands.representation import command_json
from apps.commands.services import CommandNotQueuedError, CommandSender, InvalidCommandError
from apps.commands.tasks import sweep_command_deadlines
from apps.commands.transitions import Transition, apply_transitions
from apps.devices.models import Device
from apps.mqtt_service import topology
from apps.mqtt_service.publish_queue import PublishQueue, decode_entry
from command_helpers import listen, state_pushes
from mqtt_helpers import make_scheme, publish_queue, unique  # noqa: F401 - publish_queue is a fixture
from websocket.groups import STAFF_GROUP, user_group

# Rolled back after each test (fast); the async test, whose queries run in another thread, commits.
pytestmark = pytest.mark.django_db


def make_device(owner: Any = None, is_active: bool = True) -> Device:
    return Device.objects.create(username=unique("dev"), name="test device", owner=owner, is_active=is_active)


def queued_entries(queue: PublishQueue) -> list[Any]:
    client = redis.Redis.from_url(queue.url)
    try:
        return [decode_entry(entry_id, fields) for entry_id, fields in client.xrange(queue.stream)]
    finally:
        client.close()


def test_send_command_stores_it_queued_and_enqueues_a_tracked_message(
    publish_queue: PublishQueue,  # noqa: F811
    make_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    scheme = make_scheme()
    owner = make_user()
    device = make_device()
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        command = CommandSender(publish_queue, scheme).send(
            device, "set_relay", {"relay": 2, "on": True}, timeout=60, created_by=owner
        )
    stored = Command.objects.get(pk=command.pk)
    assert stored.state == CommandState.QUEUED
    assert stored.created_by == owner
    assert before <= stored.queued_at <= timezone.now()
    assert stored.deadline == stored.queued_at + timedelta(seconds=60)
    [entry] = queued_entries(publish_queue)
    assert entry.topic == scheme.command_topic(device.username)
    assert entry.command_id == str(command.pk)
    assert json.loads(entry.payload) == {
        "id": str(command.pk),
        "name": "set_relay",
        "params": {"relay": 2, "on": True},
        "expires_at": stored.deadline.isoformat(),
    }
    assert entry.tracking is not None
    assert entry.tracking.outcome == "commands"
    assert entry.tracking.expires_at == pytest.approx(stored.deadline.timestamp())
    assert entry.tracking.response_topic == scheme.device_topic(device.username, topology.REPLY_KIND)
    assert entry.tracking.correlation_data == str(command.pk).encode()


def test_the_default_timeout_comes_from_settings(publish_queue: PublishQueue, settings: Any) -> None:  # noqa: F811
    settings.COMMAND_DEFAULT_TIMEOUT = 17
    command = CommandSender(publish_queue, make_scheme()).send(make_device(), "ping")
    assert command.timeout == 17
    assert command.params == {}
    assert command.deadline - command.queued_at == timedelta(seconds=17)


@pytest.mark.parametrize(
    ("name", "params", "timeout", "message"),
    [
        ("", None, None, "1 to 64 characters"),
        ("x" * 65, None, None, "1 to 64 characters"),
        (42, None, None, "must be a string"),
        ("re\nboot", None, None, "control characters"),
        ("reboot", ["not", "an", "object"], None, "must be a JSON object"),
        ("reboot", {"when": object()}, None, "not JSON"),
        ("reboot", {"v": float("nan")}, None, "not JSON"),
        ("reboot", {"text": "nul\x00"}, None, "bad_text"),
        ("reboot", {"big": 2**70}, None, "bad_number"),
        ("reboot", {"blob": "x" * 70_000}, None, "too_large"),
        ("reboot", None, 0, "1 to 604800 seconds"),
        ("reboot", None, -5, "1 to 604800 seconds"),
        ("reboot", None, 604_801, "1 to 604800 seconds"),
        ("reboot", None, 2.5, "whole seconds"),
        ("reboot", None, True, "whole seconds"),
        ("reboot", None, "30", "whole seconds"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored_or_queued(
    publish_queue: PublishQueue,  # noqa: F811
    name: Any,
    params: Any,
    timeout: Any,
    message: str,
) -> None:
    device = make_device()
    with pytest.raises(InvalidCommandError, match=message):
        CommandSender(publish_queue, make_scheme()).send(device, name, params, timeout=timeout)
    assert not Command.objects.filter(device=device).exists()
    assert queued_entries(publish_queue) == []


def test_an_inactive_or_unsaved_device_is_refused(publish_queue: PublishQueue) -> None:  # noqa: F811
    sender = CommandSender(publish_queue, make_scheme())
    with pytest.raises(InvalidCommandError, match="inactive"):
        sender.send(make_device(is_active=False), "reboot")
    with pytest.raises(InvalidCommandError, match="saved Device"):
        sender.send(Device(username=unique("dev")), "reboot")
    assert queued_entries(publish_queue) == []


def test_inside_a_transaction_the_command_is_queued_only_on_commit(
    publish_queue: PublishQueue,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Queued before the commit, the publisher could report `sent` for a row nobody else can see yet.
    sender = CommandSender(publish_queue, make_scheme())
    device = make_device()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        sender.send(device, "reboot")
        assert queued_entries(publish_queue) == []
    assert len(callbacks) == 1
    assert len(queued_entries(publish_queue)) == 1


def test_a_queue_that_cannot_be_reached_leaves_the_command_expired_with_the_reason(
    django_capture_on_commit_callbacks: Any,
) -> None:
    unreachable = PublishQueue("redis://127.0.0.1:1/0", stream=f"test:{uuid.uuid4().hex}")
    device = make_device()
    with pytest.raises(CommandNotQueuedError), django_capture_on_commit_callbacks(execute=True):
        CommandSender(unreachable, make_scheme()).send(device, "reboot")
    [command] = Command.objects.filter(device=device)
    assert command.state == CommandState.EXPIRED
    assert command.expired_at is not None
    assert "not queued" in command.error


@pytest.mark.django_db(transaction=True)
async def test_asend_command_queues_and_pushes_the_new_command(
    publish_queue: PublishQueue,  # noqa: F811
    make_user: Any,
) -> None:
    owner = await database_sync_to_async(make_user)()
    device = await database_sync_to_async(make_device)(owner)
    owner_channel = await listen(user_group(owner.pk))
    command = await CommandSender(publish_queue, make_scheme()).asend(device, "reboot", timeout=5)
    assert await state_pushes(owner_channel, command, until=CommandState.QUEUED) == [CommandState.QUEUED]
    [entry] = queued_entries(publish_queue)
    assert entry.command_id == str(command.pk)
    assert (await database_sync_to_async(Command.objects.get)(pk=command.pk)).state == CommandState.QUEUED


def test_command_json_has_the_contract_keys_in_iso_8601() -> None:
    device = make_device()
    now = timezone.now()
    command = Command.objects.create(
        device=device, name="reboot", timeout=30, queued_at=now, deadline=now + timedelta(seconds=30)
    )
    body = command_json(Command.objects.select_related("device").get(pk=command.pk))
    assert list(body) == [
        "id", "device", "name", "params", "state", "timeout", "deadline", "queued_at", "sent_at",
        "delivered_at", "succeeded_at", "failed_at", "expired_at", "timed_out_at", "result", "error",
    ]  # fmt: skip
    assert body["id"] == str(command.pk)
    assert body["device"] == device.username
    assert body["state"] == "queued"
    assert body["queued_at"] == now.isoformat()
    assert body["sent_at"] is None
    json.dumps(body)  # strict JSON as it is
    # The API's schema declares the same fields in the same order (CommandSerializer renders command_json).
    assert list(CommandSerializer().fields) == list(body)


def make_command(device: Device, state: str = CommandState.QUEUED, deadline_in: float = 30) -> Command:
    now = timezone.now()
    return Command.objects.create(
        device=device,
        name="reboot",
        timeout=30,
        state=state,
        queued_at=now,
        deadline=now + timedelta(seconds=deadline_in),
    )


def test_states_only_move_forward_and_each_change_happens_once() -> None:
    device = make_device()
    command = make_command(device)
    at = timezone.now()

    def apply(to: str, **extra: Any) -> bool:
        [changed], _ = apply_transitions([Transition(command.pk, to, timezone.now(), **extra)])
        return changed

    assert apply(CommandState.SENT)
    assert not apply(CommandState.SENT)  # the outcome reported again
    assert not apply(CommandState.EXPIRED)  # only a queued command can expire
    assert apply(CommandState.SUCCEEDED, device_id=device.pk, result={"v": 1})
    assert not apply(CommandState.SUCCEEDED, device_id=device.pk, result={"v": 2})  # the same reply again
    assert not apply(CommandState.FAILED, device_id=device.pk, result="late")
    assert not apply(CommandState.DELIVERED, device_id=device.pk)  # a late acknowledgement
    assert not apply(CommandState.TIMED_OUT)
    stored = Command.objects.get(pk=command.pk)
    assert stored.state == CommandState.SUCCEEDED
    assert stored.result == {"v": 1}
    assert stored.failed_at is None and stored.timed_out_at is None
    # Succeeded without a `received` first: the skipped delivered_at takes the answer's time.
    assert at <= stored.sent_at <= stored.delivered_at == stored.succeeded_at


def test_a_reply_that_overtakes_the_publishers_report_fills_in_sent_at() -> None:
    command = make_command(make_device())
    acknowledged = Transition(command.pk, CommandState.DELIVERED, timezone.now(), device_id=command.device_id)
    [changed], _ = apply_transitions([acknowledged])
    assert changed
    [late_sent], _ = apply_transitions([Transition(command.pk, CommandState.SENT, timezone.now())])
    assert not late_sent
    stored = Command.objects.get(pk=command.pk)
    assert stored.state == CommandState.DELIVERED
    assert stored.sent_at == stored.delivered_at == acknowledged.at


def test_one_batch_holding_several_changes_of_a_command_applies_them_in_forward_order() -> None:
    command = make_command(make_device())
    earlier = timezone.now()
    results, changed = apply_transitions(
        [
            Transition(command.pk, CommandState.SUCCEEDED, timezone.now(), device_id=command.device_id),
            Transition(command.pk, CommandState.SENT, earlier),
        ]
    )
    assert results == [True, True]
    assert [c.state for c in changed] == [CommandState.SUCCEEDED]
    assert Command.objects.get(pk=command.pk).sent_at == earlier


def test_only_the_commands_own_device_can_answer_it() -> None:
    command = make_command(make_device(), CommandState.SENT)
    other = make_device()
    [changed], _ = apply_transitions(
        [Transition(command.pk, CommandState.SUCCEEDED, timezone.now(), device_id=other.pk, result=1)]
    )
    assert not changed
    assert Command.objects.get(pk=command.pk).state == CommandState.SENT


def test_the_sweep_ends_open_commands_past_their_deadline(make_user: Any) -> None:
    owner = make_user()
    device = make_device(owner)
    queued = make_command(device, CommandState.QUEUED, deadline_in=-1)
    sent = make_command(device, CommandState.SENT, deadline_in=-1)
    delivered = make_command(device, CommandState.DELIVERED, deadline_in=-1)
    succeeded = make_command(device, CommandState.SUCCEEDED, deadline_in=-1)
    not_yet = make_command(device, CommandState.SENT, deadline_in=60)
    owner_channel = async_to_sync(listen)(user_group(owner.pk))
    staff_channel = async_to_sync(listen)(STAFF_GROUP)
    counts = sweep_command_deadlines()
    assert counts == {"expired": 1, "timed_out": 2}
    states = dict(Command.objects.filter(device=device).values_list("pk", "state"))
    assert states == {
        queued.pk: CommandState.EXPIRED,
        sent.pk: CommandState.TIMED_OUT,
        delivered.pk: CommandState.TIMED_OUT,
        succeeded.pk: CommandState.SUCCEEDED,
        not_yet.pk: CommandState.SENT,
    }
    assert Command.objects.get(pk=queued.pk).expired_at is not None
    assert Command.objects.get(pk=sent.pk).timed_out_at is not None
    for channel in (owner_channel, staff_channel):
        assert async_to_sync(state_pushes)(channel, delivered, until=CommandState.TIMED_OUT) == ["timed_out"]
    assert sweep_command_deadlines() == {}  # nothing left, nothing changed twice


def test_the_sweep_works_through_a_backlog_in_batches() -> None:
    from apps.commands.transitions import sweep_deadlines

    device = make_device()
    now = timezone.now()
    Command.objects.bulk_create(
        Command(device=device, name="n", timeout=1, queued_at=now, deadline=now - timedelta(seconds=1))
        for _ in range(25)
    )
    counts, batches = sweep_deadlines(timezone.now(), batch_size=10)
    assert counts == {"expired": 25}
    assert [len(batch) for batch in batches] == [10, 10, 5]
    assert not Command.objects.filter(device=device, state=CommandState.QUEUED).exists()
