"""Activity: one statement per batch of sightings brings back the devices the sweep took offline, records
why, and moves every other device's last_seen_at forward, never back."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.devices.models import Device, PresenceEvent
from apps.devices.presence.activity import ACTIVITY_REASON, INACTIVITY_REASON, Seen, record_seen
from mqtt_helpers import unique

pytestmark = pytest.mark.django_db


def test_a_batch_revives_swept_devices_only_and_moves_last_seen_forward() -> None:
    t0 = timezone.now() - timedelta(minutes=10)
    now = t0 + timedelta(minutes=5)
    online = Device.objects.create(username=unique("on"), is_online=True, last_seen_at=t0)
    swept = Device.objects.create(
        username=unique("swept"),
        is_online=False,
        last_seen_at=t0,
        last_disconnected_at=t0 + timedelta(minutes=1),
        last_disconnect_reason=INACTIVITY_REASON,
    )
    disconnected = Device.objects.create(
        username=unique("gone"),
        is_online=False,
        last_seen_at=t0,
        last_disconnected_at=t0 + timedelta(minutes=1),
        last_disconnect_reason="normal",
    )
    ahead = Device.objects.create(username=unique("ahead"), is_online=True, last_seen_at=now + timedelta(1))
    sightings = [online, swept, disconnected, ahead]

    revived = record_seen([Seen(device.pk, now) for device in sightings])

    assert [(change.device_id, change.change.reason) for change in revived] == [(swept.pk, ACTIVITY_REASON)]
    by_id = {device.pk: device for device in Device.objects.filter(pk__in=[d.pk for d in sightings])}
    assert by_id[swept.pk].is_online and by_id[swept.pk].last_connected_at == now
    assert not by_id[disconnected.pk].is_online, "a disconnected device comes back through its connect"
    assert [by_id[d.pk].last_seen_at for d in (online, swept, disconnected)] == [now] * 3
    assert by_id[ahead.pk].last_seen_at == now + timedelta(1), "last seen never moves back"
    assert list(PresenceEvent.objects.filter(device=swept).values_list("online", "reason")) == [
        (True, ACTIVITY_REASON)
    ]
    assert not PresenceEvent.objects.filter(device__in=[online, disconnected, ahead]).exists()
