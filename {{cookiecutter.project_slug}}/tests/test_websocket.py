"""The live-event socket: who may connect, and who receives what, through the real Redis channel layer."""

import pytest
from asgiref.sync import sync_to_async

from websocket.consumers import CLOSE_UNAUTHENTICATED
from websocket.groups import STAFF_GROUP, user_group
from websocket.utils.senders import websocket_sender

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_SECONDS = 0.5


async def test_anonymous_is_refused(open_socket):
    _, connected, code = await open_socket(user=None)
    assert not connected
    assert code == CLOSE_UNAUTHENTICATED


async def test_logged_in_user_is_accepted_with_a_session_cookie(open_socket, make_user):
    user = await sync_to_async(make_user)()
    _, connected, _ = await open_socket(user=user)
    assert connected


async def test_cross_origin_handshake_is_refused(open_socket, make_user, settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    user = await sync_to_async(make_user)()
    _, connected, _ = await open_socket(user=user, origin="http://evil.example")
    assert not connected


async def test_missing_origin_is_refused(open_socket, make_user, settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    user = await sync_to_async(make_user)()
    _, connected, _ = await open_socket(user=user, origin=None)
    assert not connected


async def test_the_origin_check_follows_allowed_hosts_at_each_handshake(open_socket, make_user, settings):
    """The check reads ALLOWED_HOSTS when a socket opens, not once at start-up, so pinning it works."""
    user = await sync_to_async(make_user)()
    settings.ALLOWED_HOSTS = ["iot.example.com"]
    assert not (await open_socket(user=user, origin="http://localhost"))[1]
    assert (await open_socket(user=user, origin="https://iot.example.com"))[1]


async def test_send_to_user_arrives_and_only_there(open_socket, make_user):
    alice, bob = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    alice_socket, _, _ = await open_socket(user=alice)
    bob_socket, _, _ = await open_socket(user=bob)
    payload = {"type": "device.event", "device": "device_001", "data": {"ok": True}}

    # The sync API, as a view or Celery task would call it.
    await sync_to_async(websocket_sender.send_to_user)(alice.pk, payload)

    assert await alice_socket.receive_json_from(timeout=5) == payload
    assert await bob_socket.receive_nothing(timeout=QUIET_SECONDS)


async def test_async_senders_reach_each_listed_user(open_socket, make_user):
    users = [await sync_to_async(make_user)() for _ in range(3)]
    sockets = [(await open_socket(user=user))[0] for user in users]
    await websocket_sender.asend_to_users([users[0].pk, users[1].pk, users[0].pk], {"n": 1})
    assert await sockets[0].receive_json_from(timeout=5) == {"n": 1}
    assert await sockets[1].receive_json_from(timeout=5) == {"n": 1}
    assert await sockets[0].receive_nothing(timeout=QUIET_SECONDS)  # listed twice, delivered once
    assert await sockets[2].receive_nothing(timeout=QUIET_SECONDS)


async def test_staff_join_the_staff_group_and_others_do_not(open_socket, make_user):
    staff = await sync_to_async(make_user)(is_staff=True)
    regular = await sync_to_async(make_user)()
    staff_socket, _, _ = await open_socket(user=staff)
    regular_socket, _, _ = await open_socket(user=regular)
    await websocket_sender.asend_to_group(STAFF_GROUP, {"type": "device.status"})
    assert await staff_socket.receive_json_from(timeout=5) == {"type": "device.status"}
    assert await regular_socket.receive_nothing(timeout=QUIET_SECONDS)


async def test_staff_owner_gets_one_copy_of_a_message_sent_to_both_groups(open_socket, make_user):
    staff = await sync_to_async(make_user)(is_staff=True)
    staff_socket, _, _ = await open_socket(user=staff)
    await websocket_sender.asend_to_groups([STAFF_GROUP, user_group(staff.pk)], {"type": "device.event"})
    assert await staff_socket.receive_json_from(timeout=5) == {"type": "device.event"}
    assert await staff_socket.receive_nothing(timeout=QUIET_SECONDS)


async def test_sync_send_to_groups_and_send_to_group(open_socket, make_user):
    staff, regular = await sync_to_async(make_user)(is_staff=True), await sync_to_async(make_user)()
    staff_socket, _, _ = await open_socket(user=staff)
    regular_socket, _, _ = await open_socket(user=regular)
    await sync_to_async(websocket_sender.send_to_groups)([STAFF_GROUP, user_group(regular.pk)], {"n": 2})
    assert await staff_socket.receive_json_from(timeout=5) == {"n": 2}
    assert await regular_socket.receive_json_from(timeout=5) == {"n": 2}
    await sync_to_async(websocket_sender.send_to_group)(STAFF_GROUP, {"n": 3})
    assert await staff_socket.receive_json_from(timeout=5) == {"n": 3}
    assert await regular_socket.receive_nothing(timeout=QUIET_SECONDS)


async def test_client_subscribe_is_refused_and_grants_nothing(open_socket, make_user):
    alice, bob = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    bob_socket, _, _ = await open_socket(user=bob)
    await bob_socket.send_json_to({"action": "subscribe", "group": f"user.{alice.pk}"})
    reply = await bob_socket.receive_json_from(timeout=5)
    assert reply["type"] == "error"
    assert reply["error"] == "subscribe_refused"
    await websocket_sender.asend_to_user(alice.pk, {"secret": True})
    assert await bob_socket.receive_nothing(timeout=QUIET_SECONDS)


async def test_client_messages_get_a_polite_error(open_socket, make_user):
    user = await sync_to_async(make_user)()
    sock, _, _ = await open_socket(user=user)
    await sock.send_to(text_data="not json")
    assert (await sock.receive_json_from(timeout=5))["error"] == "invalid_json"
    await sock.send_to(bytes_data=b"\x00\x01")
    assert (await sock.receive_json_from(timeout=5))["error"] == "unsupported"
    await sock.send_json_to({"action": "reboot-everything"})
    assert (await sock.receive_json_from(timeout=5))["error"] == "unsupported"
    await sock.send_json_to({"action": "ping"})
    assert await sock.receive_json_from(timeout=5) == {"type": "pong"}


async def test_an_idle_socket_stays_open_and_still_receives(open_socket, make_user):
    """The channel layer waits on Redis with blocking pops of several seconds; a client-side read timeout
    at or below that (redis-py 8 defaults to 5 s) would tear every idle socket down."""
    user = await sync_to_async(make_user)()
    socket, _, _ = await open_socket(user=user)
    assert await socket.receive_nothing(timeout=7)
    await websocket_sender.asend_to_user(user.pk, {"still": "here"})
    assert await socket.receive_json_from(timeout=5) == {"still": "here"}
