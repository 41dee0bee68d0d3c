"""Presence ordering rules, applied straight to the database: late, duplicated and out-of-order events never
move a device back, an older connection's offline event never takes a reconnected device offline, and
concurrent appliers of one event change the device once."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.devices.models import Device, PresenceEvent
from apps.devices.presence.apply import PresenceChange, Source, apply_change
from apps.devices.presence.events import change_from_client_event, change_from_presence_message
from apps.mqtt_service.payloads import PayloadRefusedError
from apps.mqtt_service.router import ClientEvent
from mqtt_helpers import unique

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def online(seconds: float, conn: str | None = None, source: str = Source.DEVICE) -> PresenceChange:
    return PresenceChange(online=True, at=at(seconds), source=source, reason="connected", conn=conn)


def offline(seconds: float, conn: str | None = None, reason: str = "normal") -> PresenceChange:
    return PresenceChange(online=False, at=at(seconds), source=Source.BROKER, reason=reason, conn=conn)


def history(device: Device) -> list[tuple[bool, datetime]]:
    return list(PresenceEvent.objects.filter(device=device).order_by("at").values_list("online", "at"))


@pytest.fixture
def device(db) -> Device:
    return Device.objects.create(username=unique("dev"))


def test_in_order_events_flip_the_device_and_are_recorded(device):
    applied = apply_change(device.pk, online(1))
    assert applied is not None and applied.flipped and applied.username == device.username
    assert apply_change(device.pk, offline(2, reason="keepalive_timeout")).flipped
    device.refresh_from_db()
    assert (device.is_online, device.last_connected_at, device.last_disconnected_at) == (False, at(1), at(2))
    assert device.last_disconnect_reason == "keepalive_timeout"
    assert history(device) == [(True, at(1)), (False, at(2))]
    event = PresenceEvent.objects.get(device=device, online=False)
    assert (event.reason, event.source) == ("keepalive_timeout", Source.BROKER)


def test_a_duplicate_changes_nothing(device):
    apply_change(device.pk, online(1, conn="k1"))
    assert apply_change(device.pk, online(1, conn="k1")) is None
    apply_change(device.pk, offline(2))
    assert apply_change(device.pk, offline(2)) is None
    assert history(device) == [(True, at(1)), (False, at(2))]


def test_events_arriving_out_of_order_end_in_the_newest_state(device):
    """The disconnect of a connection arrives before its connect: the late connect is older than the
    disconnect and is ignored (the device stays offline)."""
    assert apply_change(device.pk, offline(5)).flipped is False  # already offline: only the times move
    assert apply_change(device.pk, online(4)) is None
    device.refresh_from_db()
    assert (device.is_online, device.last_disconnected_at) == (False, at(5))
    assert history(device) == []
    # A newer connect still applies.
    assert apply_change(device.pk, online(6)).flipped
    device.refresh_from_db()
    assert device.is_online


def test_late_events_never_flip_a_device_back(device):
    apply_change(device.pk, online(1))
    apply_change(device.pk, offline(3))
    assert apply_change(device.pk, online(2)) is None  # a connect from before the disconnect
    assert apply_change(device.pk, offline(2)) is None  # an older disconnect
    apply_change(device.pk, online(4))
    assert apply_change(device.pk, offline(3.5)) is None  # a disconnect from before the reconnect
    device.refresh_from_db()
    assert device.is_online and device.last_connected_at == at(4)
    assert history(device) == [(True, at(1)), (False, at(3)), (True, at(4))]


def test_a_reconnect_keeps_the_device_online_whatever_order_the_broker_events_come_in(device):
    """EMQX path: a new connection takes the client id over; the old connection's `takenover` disconnect is
    superseded, whether it arrives before or after the new connect."""
    apply_change(device.pk, online(1, source=Source.BROKER))
    taken_over = broker_event(device, "disconnected", disconnected_at=ms(2), reason="takenover")
    assert taken_over.superseded  # never applied (the handler drops it)
    assert apply_change(device.pk, online(2, source=Source.BROKER)).flipped is False
    discarded = broker_event(device, "disconnected", disconnected_at=ms(2), reason="discarded")
    assert discarded.superseded
    device.refresh_from_db()
    assert device.is_online and device.last_connected_at == at(2)


def test_the_will_of_an_older_connection_never_takes_a_reconnected_device_offline(device):
    """Device path: the device reconnected (new token k2) before the will of its old connection (k1)
    arrived; the will names k1 and is ignored. The will of the current connection applies."""
    apply_change(device.pk, online(1, conn="k1"))
    apply_change(device.pk, online(2, conn="k2"))
    assert apply_change(device.pk, offline(3, conn="k1")) is None
    device.refresh_from_db()
    assert device.is_online and device.connection_id == "k2"
    assert apply_change(device.pk, offline(4, conn="k2")).flipped
    device.refresh_from_db()
    assert not device.is_online


def test_a_will_arriving_before_the_reconnect_only_blips(device):
    apply_change(device.pk, online(1, conn="k1"))
    assert apply_change(device.pk, offline(2, conn="k1")).flipped
    assert apply_change(device.pk, online(3, conn="k2")).flipped
    device.refresh_from_db()
    assert device.is_online and device.connection_id == "k2"


def test_an_offline_event_without_a_token_applies_by_time(device):
    apply_change(device.pk, online(1, conn="k1"))
    assert apply_change(device.pk, offline(2)).flipped


@pytest.mark.django_db(transaction=True)
def test_concurrent_appliers_of_one_event_apply_it_once():
    """Several handler replicas got the same event (redelivery): each applies it in its own connection,
    at the same moment; the device flips once and one PresenceEvent is recorded."""
    devices = [Device.objects.create(username=unique("dev")) for _ in range(10)]
    appliers = 4
    for device in devices:
        barrier = threading.Barrier(appliers)
        results: list[object] = []

        def apply(
            device: Device = device, barrier: threading.Barrier = barrier, results: list[object] = results
        ) -> None:
            try:
                barrier.wait(timeout=10)
                results.append(apply_change(device.pk, online(1, conn="k1")))
            finally:
                connection.close()

        threads = [threading.Thread(target=apply) for _ in range(appliers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        flipped = [r for r in results if r is not None and r.flipped]
        assert len(results) == appliers and len(flipped) == 1
        assert history(device) == [(True, at(1))]


def ms(seconds: float) -> int:
    return round(at(seconds).timestamp() * 1000)


def broker_event(device: Device, event: str, **payload: object):
    body = {"clientid": device.username, "username": device.username, **payload}
    topic = f"$SYS/brokers/emqx@node1/clients/{device.username}/{event}"
    return change_from_client_event(ClientEvent("emqx@node1", device.username, event, topic, body, at(60)))


def test_emqx_payloads_are_read_with_their_millisecond_times(device):
    connected = broker_event(device, "connected", connected_at=ms(1.5), ts=ms(1.6))
    assert connected.username == device.username
    assert (connected.change.online, connected.change.at, connected.change.source) == (
        True,
        at(1.5),
        "broker",
    )
    gone = broker_event(device, "disconnected", disconnected_at=ms(2), reason="keepalive_timeout")
    assert (gone.change.online, gone.change.reason, gone.superseded) == (False, "keepalive_timeout", False)


@pytest.mark.parametrize(
    "payload",
    [
        {"connected_at": "yesterday"},
        {"connected_at": -1},
        {"connected_at": 10**20},
        {"connected_at": 1.5},
        {},
        {"connected_at": 1, "username": 5},
        # Far ahead of this host's clock: once stored it would hide every real event until then.
        {"connected_at": 10**13},
    ],
)
def test_malformed_emqx_payloads_are_refused_with_a_reason(device, payload):
    event = ClientEvent("n", "c", "connected", "t", {"username": device.username, **payload}, T0)
    with pytest.raises(PayloadRefusedError) as refused:
        change_from_client_event(event)
    assert refused.value.reason == "bad_client_event"


@pytest.mark.parametrize(
    "payload",
    [{}, {"online": "true"}, {"online": 1}, {"online": True, "conn": 5}, {"online": True, "conn": "x" * 65}],
)
def test_malformed_device_presence_is_refused_with_a_reason(payload):
    with pytest.raises(PayloadRefusedError) as refused:
        change_from_presence_message(payload, T0)
    assert refused.value.reason == "bad_presence"


def test_device_presence_reads_online_and_the_optional_token():
    change = change_from_presence_message({"online": False, "conn": "abc", "extra": 1}, T0)
    assert (change.online, change.conn, change.at, change.source) == (False, "abc", T0, "device")
    assert change_from_presence_message({"online": True}, T0).conn is None
