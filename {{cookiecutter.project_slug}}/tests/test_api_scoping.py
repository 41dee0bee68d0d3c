"""A user sees only the devices they own (staff: all); another user's device, its history, its presence,
its commands and any of its commands answer 404, exactly like a device that does not exist."""

import pytest
from rest_framework.test import APIClient

from api_fixtures import Fleet, client_for, make_command, make_fleet
from apps.devices.models import DeviceEvent, PresenceEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


DEVICE_URLS = (
    "/api/devices/{}/",
    "/api/devices/{}/history/",
    "/api/devices/{}/presence/",
    "/api/devices/{}/commands/",
)


def usernames(response) -> list[str]:
    return [device["username"] for device in response.json()["results"]]


def test_a_user_lists_only_own_devices(fleet: Fleet) -> None:
    assert usernames(client_for(fleet.alice).get("/api/devices/")) == ["alice-meter"]
    assert usernames(client_for(fleet.bob).get("/api/devices/")) == ["bob-pump"]


def test_staff_list_every_device(fleet: Fleet) -> None:
    response = client_for(fleet.staff).get("/api/devices/")
    assert response.json()["count"] == 2
    assert usernames(response) == ["alice-meter", "bob-pump"]


@pytest.mark.parametrize("url", DEVICE_URLS)
def test_another_users_device_is_not_found(fleet: Fleet, url: str) -> None:
    DeviceEvent.objects.create(device=fleet.alice_device, kind="event", payload={"n": 1})
    PresenceEvent.objects.create(device=fleet.alice_device, online=True, at=fleet.alice_device.created_at)
    make_command(fleet.alice_device)
    other = client_for(fleet.bob).get(url.format("alice-meter"))
    missing = client_for(fleet.bob).get(url.format("no-such-device"))
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json() == {"detail": "No Device matches the given query."}
    assert client_for(fleet.alice).get(url.format("alice-meter")).status_code == 200
    assert client_for(fleet.staff).get(url.format("alice-meter")).status_code == 200


def test_another_users_command_is_not_found(fleet: Fleet) -> None:
    command = make_command(fleet.alice_device)
    url = f"/api/commands/{command.id}/"
    assert client_for(fleet.bob).get(url).status_code == 404
    assert client_for(fleet.alice).get(url).json()["id"] == str(command.id)
    assert client_for(fleet.staff).get(url).json()["device"] == "alice-meter"


def test_a_device_without_owner_is_seen_by_staff_only(fleet: Fleet) -> None:
    fleet.bob_device.owner = None
    fleet.bob_device.save()
    assert usernames(client_for(fleet.bob).get("/api/devices/")) == []
    assert client_for(fleet.bob).get("/api/devices/bob-pump/").status_code == 404
    assert client_for(fleet.staff).get("/api/devices/bob-pump/").json()["owner"] is None


@pytest.mark.parametrize("url", ["/api/devices/", *(u.format("alice-meter") for u in DEVICE_URLS)])
def test_anonymous_callers_are_asked_to_authenticate(fleet: Fleet, url: str) -> None:
    response = APIClient().get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}
