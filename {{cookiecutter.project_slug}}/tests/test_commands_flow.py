"""A command's whole life through the real services: send_command -> Redis stream -> publisher service ->
broker -> a real MQTT 5 device client -> its reply -> handler service -> the command's state, pushed live.

Each test has its own topic prefixes, shared group and stream; the device answers as the README tells
firmware writers to (reply on the response topic), or stays silent.
"""

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

import pytest
import redis
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.commands.models import Command, CommandState
from apps.commands.replies import BAD_REPLY
from apps.commands.services import CommandSender
from apps.commands.tasks import sweep_command_deadlines
from apps.devices.models import Device
from apps.mqtt_service import topology
from apps.mqtt_service.publish_queue import PublishQueue
from apps.mqtt_service.topics import TopicScheme
from command_helpers import (
    ACK_ONLY,
    ANSWER_ERROR,
    ANSWER_OK,
    SILENT,
    answering_device,
    listen,
    state_pushes,
    wait_for_state,
)
from mqtt_helpers import (  # noqa: F401 - publish_queue is a fixture
    device_client,
    eventually,
    make_scheme,
    publish_queue,
    running_handler,
    running_publisher,
    stream_state,
    unique,
    user_property,
)
from websocket.groups import STAFF_GROUP, user_group

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def create_device(owner: Any = None) -> Device:
    return Device.objects.create(username=unique("dev"), name="test device", owner=owner)


def assert_pushed_once_each(states: list[str]) -> None:
    """Each write pushes the command as it then is: states written in one batch (a `received` and an `ok`
    handled together) arrive as one push of the later state. The publisher's `sent` and the device's
    `received` race each other (separate services), so their pushes may arrive in either order."""
    assert states[0] == "queued" and states[-1] == "succeeded"
    assert len(states) == len(set(states))
    assert set(states) <= {"queued", "sent", "delivered", "succeeded"}


def sender(queue: PublishQueue, scheme: TopicScheme) -> CommandSender:
    return CommandSender(queue, scheme, qos=1)  # QoS 1 whatever was answered: these tests count deliveries


async def test_a_command_the_device_answers_ok_arrives_with_its_properties_succeeds_and_is_pushed(
    publish_queue: PublishQueue,  # noqa: F811
    make_user: Any,
) -> None:
    owner = await database_sync_to_async(make_user)()
    device = await create_device(owner)
    scheme = make_scheme()
    owner_channel = await listen(user_group(owner.pk))
    staff_channel = await listen(STAFF_GROUP)
    async with (
        running_handler(scheme),
        running_publisher(publish_queue, scheme),
        answering_device(scheme, device.username, ANSWER_OK) as dev,
    ):
        command = await sender(publish_queue, scheme).asend(device, "set_relay", {"relay": 2}, timeout=30)
        done = await wait_for_state(command, CommandState.SUCCEEDED)
        owner_states = await state_pushes(owner_channel, command, until=CommandState.SUCCEEDED)
        staff_states = await state_pushes(staff_channel, command, until=CommandState.SUCCEEDED)
    assert done.result == {"done": "set_relay"}
    assert done.error == ""
    assert done.queued_at <= done.sent_at <= done.delivered_at <= done.succeeded_at <= done.deadline
    assert_pushed_once_each(owner_states)
    assert_pushed_once_each(staff_states)
    [message] = dev.received
    assert json.loads(message.payload) == {
        "id": str(command.pk),
        "name": "set_relay",
        "params": {"relay": 2},
        "expires_at": command.deadline.isoformat(),
    }
    assert datetime.fromisoformat(json.loads(message.payload)["expires_at"]) == command.deadline
    properties = message.properties
    assert properties.CorrelationData == str(command.pk).encode()
    assert properties.ResponseTopic == scheme.device_topic(device.username, topology.REPLY_KIND)
    # Seconds left until the deadline, as the broker forwards it (it counts down while the message waits).
    assert 20 <= properties.MessageExpiryInterval <= 30
    assert user_property(message, "command_id") == str(command.pk)


async def test_a_command_the_device_answers_with_an_error_fails_with_its_reason(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    device = await create_device()
    scheme = make_scheme()
    async with (
        running_handler(scheme),
        running_publisher(publish_queue, scheme),
        answering_device(scheme, device.username, ANSWER_ERROR),
    ):
        command = await sender(publish_queue, scheme).asend(device, "set_relay", {"relay": 9})
        failed = await wait_for_state(command, CommandState.FAILED)
    assert failed.error == "no such relay"
    assert failed.result == {"message": "no such relay", "code": 4}
    assert failed.delivered_at is not None and failed.succeeded_at is None


async def test_commands_left_unanswered_time_out_at_their_deadline(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    """One device only acknowledges (delivered, never answered), the other stays silent (sent)."""
    acking, silent = await create_device(), await create_device()
    scheme = make_scheme()
    commands = sender(publish_queue, scheme)
    async with (
        running_handler(scheme),
        running_publisher(publish_queue, scheme),
        answering_device(scheme, acking.username, ACK_ONLY),
        answering_device(scheme, silent.username, SILENT),
    ):
        acked = await commands.asend(acking, "reboot", timeout=1)
        ignored = await commands.asend(silent, "reboot", timeout=1)
        await wait_for_state(acked, CommandState.DELIVERED)
        await wait_for_state(ignored, CommandState.SENT)
        assert await database_sync_to_async(sweep_command_deadlines)() == {}  # not before their deadline
        await asyncio.sleep(max(0.0, (ignored.deadline - timezone.now()).total_seconds()))
        assert await database_sync_to_async(sweep_command_deadlines)() == {"timed_out": 2}
    for command, was_delivered in ((acked, True), (ignored, False)):
        timed_out = await wait_for_state(command, CommandState.TIMED_OUT)
        assert timed_out.timed_out_at >= timed_out.deadline
        assert (timed_out.delivered_at is not None) is was_delivered


async def test_a_command_not_sent_before_its_deadline_expires_and_is_never_published(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    device = await create_device()
    scheme = make_scheme()
    async with answering_device(scheme, device.username, ANSWER_OK) as dev:
        # No publisher running (all replicas down): the command waits in the stream past its deadline.
        command = await sender(publish_queue, scheme).asend(device, "reboot", timeout=1)
        await asyncio.sleep(max(0.0, (command.deadline - timezone.now()).total_seconds()) + 0.05)
        async with running_publisher(publish_queue, scheme) as publisher:
            expired = await wait_for_state(command, CommandState.EXPIRED)
            assert await eventually(lambda: stream_state(publish_queue)["length"] == 0)
            assert publisher.metrics.get("expired") == 1
            assert publisher.metrics.get("published") == 0
        await asyncio.sleep(0.2)
        assert dev.received == []
    assert expired.sent_at is None and expired.expired_at is not None


async def test_a_command_delivered_twice_and_answered_twice_changes_its_state_once(
    publish_queue: PublishQueue,  # noqa: F811
    make_user: Any,
) -> None:
    """At least once in both directions: the publisher may send a command again (here: its stream entry is
    written twice), and the device may answer again (here: it publishes every reply twice)."""
    owner = await database_sync_to_async(make_user)()
    device = await create_device(owner)
    scheme = make_scheme()
    owner_channel = await listen(user_group(owner.pk))
    commands = sender(publish_queue, scheme)
    async with answering_device(scheme, device.username, ANSWER_OK, repeat=2) as dev:
        command = await commands.asend(device, "reboot", timeout=30)
        _duplicate_stream_entry(publish_queue)
        async with running_handler(scheme) as handler, running_publisher(publish_queue, scheme) as publisher:
            await dev.wait_for(2)
            first = await wait_for_state(command, CommandState.SUCCEEDED)
            states = await state_pushes(owner_channel, command, until=CommandState.SUCCEEDED)
            # 2 deliveries x (received + ok) x 2 copies = 8 replies handled
            assert await eventually(lambda: handler.metrics.get("processed") >= 8)
            later = await state_pushes(owner_channel, command, until=None, within=0.5)
            assert publisher.metrics.get("published") == 2
    again = await wait_for_state(command, CommandState.SUCCEEDED)
    assert (again.sent_at, again.delivered_at, again.succeeded_at) == (
        first.sent_at,
        first.delivered_at,
        first.succeeded_at,
    )
    assert_pushed_once_each(states)
    assert later == []


def _duplicate_stream_entry(queue: PublishQueue) -> None:
    client = redis.Redis.from_url(queue.url)
    try:
        [(_, fields)] = client.xrange(queue.stream)
        client.xadd(queue.stream, fields)
    finally:
        client.close()


async def test_a_reply_from_another_devices_topic_is_ignored_and_bad_replies_are_counted(
    publish_queue: PublishQueue,  # noqa: F811
) -> None:
    device = await create_device()
    intruder = await create_device()
    scheme = make_scheme()
    intruder_topic = scheme.device_topic(intruder.username, topology.REPLY_KIND)
    async with (
        running_handler(scheme) as handler,
        running_publisher(publish_queue, scheme),
        answering_device(scheme, device.username, SILENT),
        device_client() as other,
    ):
        command = await sender(publish_queue, scheme).asend(device, "unlock", timeout=30)
        await wait_for_state(command, CommandState.SENT)
        forged = {"id": str(command.pk), "status": "ok", "result": "opened"}
        bad = [
            {"status": "ok"},
            {"id": "not-a-uuid", "status": "ok"},
            {"id": str(uuid.uuid4()), "status": "done"},
            {"id": str(command.pk), "status": 1},
        ]
        for body in [forged, *bad]:
            await other.publish(intruder_topic, json.dumps(body).encode(), qos=1)
        assert await eventually(lambda: handler.metrics.get("failed", reason=BAD_REPLY) == len(bad))
        assert await eventually(lambda: handler.metrics.get("processed") >= 1)
        # The service carries on: the command's own device is still heard.
        own_topic = scheme.device_topic(device.username, topology.REPLY_KIND)
        await other.publish(
            own_topic, json.dumps({"id": str(command.pk), "status": "received"}).encode(), qos=1
        )
        delivered = await wait_for_state(command, CommandState.DELIVERED)
    assert delivered.result is None
    stored = await database_sync_to_async(Command.objects.get)(pk=command.pk)
    assert stored.succeeded_at is None
