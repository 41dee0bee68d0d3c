"""The device list and one device: the contract's shape, filters, ordering and page sizes."""

import pytest

from api_fixtures import Fleet, client_for, make_fleet
from apps.devices.models import Device

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


def usernames(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [device["username"] for device in response.json()["results"]]


def test_a_device_has_the_contract_shape(fleet: Fleet) -> None:
    device = fleet.alice_device
    device.is_online = True
    device.latest = {"event": {"data": {"t": 21.5}, "at": "2026-01-02T03:04:05+00:00", "ts": 1767323045000}}
    device.save()
    body = client_for(fleet.alice).get("/api/devices/alice-meter/").json()
    assert body == {
        "username": "alice-meter",
        "name": "Kitchen meter",
        "is_online": True,
        "last_seen_at": None,
        "last_connected_at": None,
        "last_disconnected_at": None,
        "last_disconnect_reason": "",
        "latest": {"event": {"data": {"t": 21.5}, "at": "2026-01-02T03:04:05+00:00"}},
        "owner": "alice",
    }


def test_the_list_is_ordered_by_username_and_counted(fleet: Fleet) -> None:
    for username in ("zeta", "beta", "alpha"):
        Device.objects.create(username=username, owner=fleet.alice)
    response = client_for(fleet.alice).get("/api/devices/")
    assert usernames(response) == ["alice-meter", "alpha", "beta", "zeta"]
    assert response.json()["count"] == 4


def test_online_filter(fleet: Fleet) -> None:
    Device.objects.filter(username="alice-meter").update(is_online=True)
    client = client_for(fleet.staff)
    assert usernames(client.get("/api/devices/", {"online": "true"})) == ["alice-meter"]
    assert usernames(client.get("/api/devices/", {"online": "false"})) == ["bob-pump"]


@pytest.mark.parametrize(
    ("search", "found"),
    [
        ("meter", ["alice-meter"]),
        ("GARDEN", ["bob-pump"]),
        ("p", ["bob-pump"]),
        ("e", ["alice-meter", "bob-pump"]),
    ],
)
def test_search_by_name_or_username(fleet: Fleet, search: str, found: list[str]) -> None:
    assert usernames(client_for(fleet.staff).get("/api/devices/", {"search": search})) == found


def test_pages_and_page_size(fleet: Fleet) -> None:
    Device.objects.bulk_create(Device(username=f"d{i:03d}", owner=fleet.bob) for i in range(5))
    client = client_for(fleet.bob)
    first = client.get("/api/devices/", {"page_size": 2}).json()
    assert first["count"] == 6
    assert [d["username"] for d in first["results"]] == ["bob-pump", "d000"]
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert [d["username"] for d in second["results"]] == ["d001", "d002"]
    assert second["previous"] is not None


def test_page_size_is_capped(fleet: Fleet) -> None:
    Device.objects.bulk_create(Device(username=f"d{i:03d}", owner=fleet.bob) for i in range(3))
    from apps.api.pagination import DevicePagination

    client = client_for(fleet.bob)
    capped = client.get("/api/devices/", {"page_size": DevicePagination.max_page_size + 1}).json()
    assert len(capped["results"]) == 4
    default = client.get("/api/devices/", {"page_size": "many"}).json()
    assert len(default["results"]) == 4
