import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.devices.models import Device, DeviceEvent
from apps.devices.passwords import generate_device_password

pytestmark = pytest.mark.django_db


def test_set_and_check_password():
    device = Device(username="sensor-1")
    password = generate_device_password()
    device.set_password(password)
    device.save()
    device.refresh_from_db()
    assert device.check_password(password)
    assert not device.check_password(password[:-1])
    assert password not in (device.password_hash, device.salt)


def test_set_password_refuses_a_short_or_weak_password():
    with pytest.raises(ValidationError):
        Device(username="sensor-2").set_password("short")
    with pytest.raises(ValidationError, match="too easy to guess"):
        Device(username="sensor-2").set_password("sensor-2sensor-2sensor-2")


def test_salt_is_never_null():
    device = Device.objects.create(username="no-password-yet")
    with connection.cursor() as cursor:
        cursor.execute("SELECT salt IS NULL FROM devices_device WHERE id = %s", [device.pk])
        assert cursor.fetchone() == (False,)


def test_owner_relation_and_events(make_user):
    owner = make_user()
    device = Device.objects.create(username="sensor-3", owner=owner)
    DeviceEvent.objects.create(device=device, kind="status", payload={"battery": 91})
    assert list(owner.devices.all()) == [device]
    assert device.events.get().payload == {"battery": 91}


def test_owner_deletion_keeps_the_device(make_user):
    owner = make_user()
    device = Device.objects.create(username="sensor-4", owner=owner)
    owner.delete()
    device.refresh_from_db()
    assert device.owner is None


def test_event_index_on_device_and_time_exists():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "devices_deviceevent")
    assert constraints["devices_event_device_time"]["columns"] == ["device_id", "received_at"]
