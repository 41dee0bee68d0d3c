"""Batched pushes (websocket_sender.asend_many, used by the MQTT handler): one channel-layer message per
group, unpacked by the consumer into one frame per event, in order, once per socket."""

import math

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from websocket.groups import STAFF_GROUP, user_group
from websocket.utils import senders
from websocket.utils.senders import websocket_sender

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_SECONDS = 0.5


async def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def test_one_channel_message_per_group_with_one_id_per_push():
    owner_channel, staff_channel = await listen(user_group(901)), await listen(STAFF_GROUP)
    pushes = [([STAFF_GROUP, user_group(901)], {"n": i}) for i in range(5)] + [([STAFF_GROUP], {"n": 99})]
    assert await websocket_sender.asend_many(pushes) == [None] * 6
    layer = get_channel_layer()
    owner_message = await layer.receive(owner_channel)
    staff_message = await layer.receive(staff_channel)
    assert owner_message["type"] == staff_message["type"] == "ws.push_batch"
    assert [event["payload"] for event in owner_message["events"]] == [{"n": i} for i in range(5)]
    expected_staff = [{"n": i} for i in range(5)] + [{"n": 99}]
    assert [event["payload"] for event in staff_message["events"]] == expected_staff
    assert [e["id"] for e in owner_message["events"]] == [e["id"] for e in staff_message["events"][:5]]
    assert len({e["id"] for e in staff_message["events"]}) == 6


async def test_ids_are_unique_across_calls():
    channel = await listen(user_group(904))
    await websocket_sender.asend_many([([user_group(904)], {"n": 1})])
    await websocket_sender.asend_many([([user_group(904)], {"n": 2})])
    layer = get_channel_layer()
    first, second = await layer.receive(channel), await layer.receive(channel)
    assert first["events"][0]["id"] != second["events"][0]["id"]


async def test_unchecked_pushes_skip_the_json_check():
    channel = await listen(user_group(905))
    results = await websocket_sender.asend_many([([user_group(905)], {"v": math.nan})], check_json=False)
    assert results == [None]
    message = await get_channel_layer().receive(channel)
    assert math.isnan(message["events"][0]["payload"]["v"])


async def test_large_batches_are_split_into_bounded_messages(monkeypatch):
    monkeypatch.setattr(senders, "MAX_EVENTS_PER_MESSAGE", 3)
    channel = await listen(user_group(902))
    await websocket_sender.asend_many([([user_group(902)], {"n": i}) for i in range(7)])
    layer = get_channel_layer()
    sizes = [len((await layer.receive(channel))["events"]) for _ in range(3)]
    assert sizes == [3, 3, 1]


async def test_a_bad_payload_fails_only_its_own_push():
    channel = await listen(user_group(903))
    results = await websocket_sender.asend_many(
        [([user_group(903)], {"n": 1}), ([user_group(903)], {"bad": object()}), ([user_group(903)], {"n": 3})]
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], TypeError)
    message = await get_channel_layer().receive(channel)
    assert [event["payload"] for event in message["events"]] == [{"n": 1}, {"n": 3}]


async def test_socket_gets_each_event_as_its_own_frame_once_in_order(open_socket, make_user):
    staff = await sync_to_async(make_user)(is_staff=True)
    regular = await sync_to_async(make_user)()
    staff_socket, _, _ = await open_socket(user=staff)
    regular_socket, _, _ = await open_socket(user=regular)
    # The staff user owns the device: the events reach their socket through both of its groups.
    pushes = [([STAFF_GROUP, user_group(staff.pk)], {"type": "device.event", "n": i}) for i in range(600)]
    await websocket_sender.asend_many(pushes)
    received = [await staff_socket.receive_json_from(timeout=5) for _ in range(600)]
    assert received == [payload for _, payload in pushes]
    assert await staff_socket.receive_nothing(timeout=QUIET_SECONDS)
    assert await regular_socket.receive_nothing(timeout=QUIET_SECONDS)


async def test_socket_drops_only_an_unchecked_event_that_is_not_strict_json(open_socket, make_user):
    user = await sync_to_async(make_user)()
    socket_, _, _ = await open_socket(user=user)
    group = user_group(user.pk)
    pushes = [([group], {"n": 1}), ([group], {"n": math.inf}), ([group], {"n": 3})]
    await websocket_sender.asend_many(pushes, check_json=False)
    assert await socket_.receive_from(timeout=5) == '{"n": 1}'
    assert await socket_.receive_from(timeout=5) == '{"n": 3}'
    assert await socket_.receive_nothing(timeout=QUIET_SECONDS)
