"""The inactivity sweep: silent devices go offline in batches, each change recorded and pushed; beat runs
it."""

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from apps.devices.models import Device, PresenceEvent
from apps.devices.presence.inactivity import sweep_inactive_devices
from config.celery import app as celery_app
from mqtt_helpers import unique
from websocket.groups import user_group

pytestmark = pytest.mark.django_db(transaction=True)


def online_device(silent_for: timedelta, **fields: Any) -> Device:
    since = timezone.now() - silent_for
    return Device.objects.create(
        username=unique("dev"), is_online=True, last_connected_at=since, last_seen_at=since, **fields
    )


def test_devices_silent_past_their_timeout_go_offline(settings: Any, make_user: Any) -> None:
    settings.DEVICE_INACTIVITY_TIMEOUT = 300
    owner = make_user()
    silent = online_device(timedelta(minutes=6), owner=owner)
    talking = online_device(timedelta(minutes=1))
    patient = online_device(timedelta(minutes=6), inactivity_timeout=3600)
    strict = online_device(timedelta(seconds=30), inactivity_timeout=10)
    never = online_device(timedelta(days=30), inactivity_timeout=0)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(owner.pk), channel)

    assert sweep_inactive_devices(batch_size=2) == 2
    assert sweep_inactive_devices() == 0  # nothing left, nothing twice

    states = dict(Device.objects.values_list("username", "is_online"))
    assert states == {
        silent.username: False,
        talking.username: True,
        patient.username: True,
        strict.username: False,
        never.username: True,
    }
    swept = Device.objects.get(pk=silent.pk)
    assert swept.last_disconnect_reason == "inactivity" and swept.last_disconnected_at > swept.last_seen_at
    events = PresenceEvent.objects.filter(device=silent)
    assert list(events.values_list("online", "reason", "source")) == [(False, "inactivity", "inactivity")]
    message = async_to_sync(layer.receive)(channel)
    [push] = message["events"]
    assert push["payload"] == {
        "type": "device.presence",
        "device": silent.username,
        "online": False,
        "at": swept.last_disconnected_at.isoformat(),
        "reason": "inactivity",
        "source": "inactivity",
        "last_seen_at": swept.last_seen_at.isoformat(),
    }


def test_a_device_that_connected_but_never_sent_anything_is_timed_from_its_connect(settings: Any) -> None:
    settings.DEVICE_INACTIVITY_TIMEOUT = 60
    quiet = Device.objects.create(
        username=unique("dev"), is_online=True, last_connected_at=timezone.now() - timedelta(minutes=2)
    )
    fresh = Device.objects.create(username=unique("dev"), is_online=True, last_connected_at=timezone.now())
    assert sweep_inactive_devices() == 1
    assert not Device.objects.get(pk=quiet.pk).is_online
    assert Device.objects.get(pk=fresh.pk).is_online


def test_the_setting_zero_turns_the_sweep_off(settings: Any) -> None:
    settings.DEVICE_INACTIVITY_TIMEOUT = 0
    device = online_device(timedelta(days=3))
    assert sweep_inactive_devices() == 0
    assert Device.objects.get(pk=device.pk).is_online


def test_beat_schedules_the_sweep_from_the_settings(settings: Any) -> None:
    """The database scheduler of beat writes CELERY_BEAT_SCHEDULE into its tables when it starts."""
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    scheduler.setup_schedule()
    task = PeriodicTask.objects.get(name="devices.sweep_inactive_devices")
    assert task.task == "apps.devices.tasks.sweep_inactive_devices"
    assert task.enabled
    assert task.interval.every == settings.DEVICE_INACTIVITY_SWEEP_INTERVAL
    celery_app.loader.import_default_modules()  # what a worker does at start: it then knows the task
    assert "apps.devices.tasks.sweep_inactive_devices" in celery_app.tasks
