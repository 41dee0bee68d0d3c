"""The Devices admin: a password goes in, only its hash and salt are stored."""

import pytest
from django.urls import reverse

from apps.devices.forms import DeviceAdminForm
from apps.devices.models import Device, DeviceEvent

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-device-password-42"


def add_device(admin_client, **fields):
    data = {
        "username": "meter-1",
        "name": "Meter",
        "is_active": "on",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    data.update(fields)
    return admin_client.post(reverse("admin:devices_device_add"), data)


def test_create_through_admin_stores_hash_and_salt(admin_client):
    response = add_device(admin_client)
    assert response.status_code == 302, response.content
    device = Device.objects.get(username="meter-1")
    assert device.password_hash
    assert PASSWORD not in device.password_hash
    assert device.check_password(PASSWORD)


def test_create_requires_a_password(admin_client):
    response = add_device(admin_client, password1="", password2="")
    assert response.status_code == 200
    assert "A new device needs a password." in response.content.decode()
    assert not Device.objects.exists()


def test_too_short_password_is_refused(admin_client):
    response = add_device(admin_client, password1="short", password2="short")
    assert "at least 16 characters" in response.content.decode()
    assert not Device.objects.exists()


def test_easy_to_guess_password_is_refused_with_the_reason(admin_client):
    response = add_device(admin_client, password1="a" * 16, password2="a" * 16)
    page = response.content.decode()
    assert "too easy to guess" in page
    assert "Repeats like" in page
    assert not Device.objects.exists()


def test_mismatched_confirmation_is_refused(admin_client):
    response = add_device(admin_client, password2=PASSWORD + "x")
    assert "The two passwords differ." in response.content.decode()
    assert not Device.objects.exists()


def test_bad_username_is_refused(admin_client):
    response = add_device(admin_client, username="meter/#")
    assert "cannot contain" in response.content.decode()
    assert not Device.objects.exists()


def test_edit_without_password_keeps_the_hash(admin_client):
    add_device(admin_client)
    device = Device.objects.get()
    before = (device.password_hash, device.salt)
    response = admin_client.post(
        reverse("admin:devices_device_change", args=[device.pk]),
        {"username": "meter-1", "name": "Renamed", "is_active": "on", "password1": "", "password2": ""},
    )
    assert response.status_code == 302, response.content
    device.refresh_from_db()
    assert device.name == "Renamed"
    assert (device.password_hash, device.salt) == before


def test_edit_with_password_rotates_it():
    device = Device(username="meter-2")
    device.set_password(PASSWORD)
    device.save()
    new = "another-long-password-99"
    form = DeviceAdminForm(
        data={"username": "meter-2", "is_active": True, "password1": new, "password2": new}, instance=device
    )
    assert form.is_valid(), form.errors
    form.save()
    device.refresh_from_db()
    assert device.check_password(new)
    assert not device.check_password(PASSWORD)


def test_hash_and_salt_are_read_only_in_the_change_form(admin_client):
    add_device(admin_client)
    device = Device.objects.get()
    page = admin_client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()
    assert device.password_hash in page  # shown ...
    assert 'name="password_hash"' not in page  # ... but not editable
    assert 'name="salt"' not in page


def test_changelist_and_search(admin_client):
    add_device(admin_client)
    response = admin_client.get(reverse("admin:devices_device_changelist"), {"q": "meter"})
    assert response.status_code == 200
    assert "meter-1" in response.content.decode()


def test_device_events_are_read_only(admin_client):
    add_device(admin_client)
    event = DeviceEvent.objects.create(device=Device.objects.get(), kind="status", payload={"ok": True})
    assert admin_client.get(reverse("admin:devices_deviceevent_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:devices_deviceevent_add")).status_code == 403
    change = admin_client.post(
        reverse("admin:devices_deviceevent_change", args=[event.pk]), {"kind": "event", "payload": "{}"}
    )
    assert change.status_code == 403
    event.refresh_from_db()
    assert event.kind == "status"
    assert admin_client.post(reverse("admin:devices_deviceevent_delete", args=[event.pk])).status_code == 403
