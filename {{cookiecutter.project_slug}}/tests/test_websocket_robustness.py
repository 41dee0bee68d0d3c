"""Whatever a client sends, and whatever Redis does during a handshake, a socket ends cleanly: an error frame
or a close code, never an exception, and never a group member left behind."""

import asyncio

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from conftest import group_members
from websocket import consumers
from websocket.channel_layer import WaitingPoolChannelLayer
from websocket.consumers import CLOSE_INTERNAL_ERROR, CLOSE_TRY_AGAIN_LATER, MAX_FRAME_CHARS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(consumers, "GROUP_RETRY_DELAYS", (0.01,))


async def close_code(socket) -> int | None:
    message = await socket.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    return message.get("code")


async def test_a_deeply_nested_frame_gets_an_error_and_the_socket_stays_usable(open_socket, make_user):
    sock, _, _ = await open_socket(user=await sync_to_async(make_user)())
    depth = MAX_FRAME_CHARS // 2  # within the size limit, far beyond what the JSON parser recurses into
    await sock.send_to(text_data="[" * depth + "]" * depth)
    assert (await sock.receive_json_from(timeout=5))["error"] == "too_deep"
    await sock.send_json_to({"action": "ping"})
    assert await sock.receive_json_from(timeout=5) == {"type": "pong"}


async def test_an_oversized_frame_is_refused_unread(open_socket, make_user):
    sock, _, _ = await open_socket(user=await sync_to_async(make_user)())
    await sock.send_to(text_data='{"action": "ping", "pad": "' + "x" * MAX_FRAME_CHARS + '"}')
    assert (await sock.receive_json_from(timeout=5))["error"] == "too_large"
    await sock.send_to(text_data="[" * 1_000_000)
    assert (await sock.receive_json_from(timeout=5))["error"] == "too_large"


@pytest.mark.parametrize("frame", ["null", "[]", '"text"', "1e999", '{"action": ["ping"]}', "{}", " "])
async def test_odd_json_frames_get_an_error_frame(open_socket, make_user, frame):
    sock, _, _ = await open_socket(user=await sync_to_async(make_user)())
    await sock.send_to(text_data=frame)
    reply = await sock.receive_json_from(timeout=5)
    assert reply["type"] == "error"


async def test_a_frame_that_breaks_the_consumer_closes_the_socket_and_leaves_its_groups(
    open_socket, make_user, layer_prefix, monkeypatch
):
    async def broken(self, content, **kwargs):
        raise RuntimeError("bug in a frame handler")

    monkeypatch.setattr(consumers.DeviceEventsConsumer, "receive_json", broken)
    sock, _, _ = await open_socket(user=await sync_to_async(make_user)(is_staff=True))
    assert len(group_members(layer_prefix)) == 2  # the user's group and the staff group
    await sock.send_json_to({"action": "ping"})
    assert await close_code(sock) == CLOSE_INTERNAL_ERROR
    await sock.disconnect()
    assert group_members(layer_prefix) == {}


async def test_fifty_misbehaving_clients_leave_no_group_member(open_socket, make_user, layer_prefix):
    staff = await sync_to_async(make_user)(is_staff=True)
    users = [await sync_to_async(make_user)() for _ in range(4)] + [staff]
    sockets = [(await open_socket(user=users[i % len(users)]))[0] for i in range(50)]
    assert sum(group_members(layer_prefix).values()) == 50 + 10  # 10 staff sockets are in two groups
    frames = ["[" * MAX_FRAME_CHARS, "[" * 2000 + "]" * 2000, "\x00", '{"action": "subscribe"}', "{"]
    for i, sock in enumerate(sockets):
        await sock.send_to(text_data=frames[i % len(frames)])
        if i % 2:
            await sock.send_to(bytes_data=b"\xff" * 64)
    for sock in sockets:
        await sock.disconnect(code=1002 if sockets.index(sock) % 3 else 1000)
    assert group_members(layer_prefix) == {}


async def test_a_failing_group_join_is_retried(open_socket, make_user, monkeypatch, quick_retries):
    real_group_add = WaitingPoolChannelLayer.group_add
    failures = iter([True, True])

    async def flaky(self, group, channel):
        if next(failures, False):
            raise redis.ConnectionError("No connection available.")
        await real_group_add(self, group, channel)

    monkeypatch.setattr(WaitingPoolChannelLayer, "group_add", flaky)
    user = await sync_to_async(make_user)()
    sock, connected, _ = await open_socket(user=user)
    assert connected
    await get_channel_layer().group_send(f"user.{user.pk}", {"type": "ws.push", "payload": {"ok": 1}})
    assert await sock.receive_json_from(timeout=5) == {"ok": 1}


async def test_a_join_that_keeps_failing_closes_with_try_again_later(
    open_socket, make_user, monkeypatch, layer_prefix, quick_retries
):
    real_group_add = WaitingPoolChannelLayer.group_add

    async def staff_group_down(self, group, channel):
        if group == "staff":
            raise redis.ConnectionError("No connection available.")
        await real_group_add(self, group, channel)

    monkeypatch.setattr(WaitingPoolChannelLayer, "group_add", staff_group_down)
    sock, connected, _ = await open_socket(user=await sync_to_async(make_user)(is_staff=True))
    assert connected  # accepted, so the browser sees the close code
    assert await close_code(sock) == CLOSE_TRY_AGAIN_LATER
    assert group_members(layer_prefix) == {}  # the group it did join was left


async def test_a_cancelled_receive_really_stops():
    """Cancelling the layer's receive ends it even when the cancellation lands as a Redis call completes
    (Python 3.11's asyncio.wait_for can lose it there); cancel it at every point of its first steps."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for steps in range(12):
        receiving = asyncio.ensure_future(layer.receive(channel))
        for _ in range(steps):
            await asyncio.sleep(0)
        receiving.cancel()
        await asyncio.wait_for(asyncio.gather(receiving, return_exceptions=True), 2)
        assert receiving.done()
