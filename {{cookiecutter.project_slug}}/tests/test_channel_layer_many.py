"""group_send_many: what a group_send per group would deliver, in two Redis round trips, in the given order;
and the sender's path for a channel layer that lacks it."""

from typing import Any

import pytest
import redis
from channels.layers import get_channel_layer

from websocket.groups import user_group
from websocket.utils.senders import websocket_sender

pytestmark = pytest.mark.django_db(transaction=True)


async def member_of(*groups: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    return channel


async def received(channel: str, count: int) -> list[Any]:
    layer = get_channel_layer()
    return [(await layer.receive(channel))["n"] for _ in range(count)]


async def test_each_member_gets_its_groups_messages_once_each_in_the_order_given() -> None:
    first, second = user_group(911), user_group(912)
    only_first, only_second, both = (
        await member_of(first),
        await member_of(second),
        await member_of(first, second),
    )
    sends = [(first, {"type": "test.message", "n": n}) for n in (1, 3)]
    sends.insert(1, (second, {"type": "test.message", "n": 2}))
    sends += [(second, {"type": "test.message", "n": n}) for n in range(4, 40)]

    await get_channel_layer().group_send_many(sends)

    assert await received(only_first, 2) == [1, 3]
    assert await received(only_second, 37) == [2, *range(4, 40)]
    assert await received(both, 39) == [1, 2, 3, *range(4, 40)]


async def test_a_group_without_members_is_no_error() -> None:
    await get_channel_layer().group_send_many([(user_group(913), {"type": "test.message", "n": 1})])


async def test_a_channel_layer_failure_fails_every_push_of_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = get_channel_layer()

    async def unreachable(sends: Any) -> None:
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(layer, "group_send_many", unreachable)
    results = await websocket_sender.asend_many(
        [([user_group(914)], {"n": 1}), ([user_group(915)], {"n": 2})]
    )
    assert [type(result) for result in results] == [redis.ConnectionError] * 2


async def test_a_layer_without_group_send_many_gets_a_group_send_per_group(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    assert not hasattr(layer, "group_send_many")
    channel = await member_of(user_group(916))
    assert await websocket_sender.asend_many([([user_group(916)], {"n": n}) for n in range(3)]) == [None] * 3
    message = await layer.receive(channel)
    assert [event["payload"] for event in message["events"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
