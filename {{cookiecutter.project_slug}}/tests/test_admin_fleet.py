"""The fleet in the admin: presence and latest values on the device list, presence history and recent
commands on a device's page, commands with their state history, read-only."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from api_fixtures import Fleet, make_command, make_fleet
from apps.commands.models import Command, CommandState
from apps.devices.admin import RECENT_ROWS
from apps.devices.models import Device, PresenceEvent

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def fleet() -> Fleet:
    made = make_fleet()
    made.staff.is_superuser = True
    made.staff.save()
    return made


@pytest.fixture
def admin(fleet: Fleet) -> Client:
    client = Client()
    client.force_login(fleet.staff)
    return client


def page(admin: Client, url: str, params: dict | None = None) -> str:
    response = admin.get(url, params or {})
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_device_list_shows_presence_in_words_and_latest_values(fleet: Fleet, admin: Client) -> None:
    Device.objects.filter(pk=fleet.alice_device.pk).update(
        is_online=True,
        latest={"event": {"data": {"t": 21.5, "note": "<b>hot</b>"}, "at": "2026-03-01T12:00:00"}},
    )
    html = page(admin, "/admin/devices/device/")
    assert "&#9679; online</strong>" in html
    assert "&#9675; offline</span>" in html
    assert "event: {&quot;note&quot;: &quot;&lt;b&gt;hot&lt;/b&gt;&quot;, &quot;t&quot;: 21.5}" in html


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({"is_online__exact": "1"}, "alice-meter", "bob-pump"),
        ({"is_active__exact": "0"}, "bob-pump", "alice-meter"),
        ({"owner__id__exact": "{alice}"}, "alice-meter", "bob-pump"),
    ],
)
def test_device_list_filters(fleet: Fleet, admin: Client, params: dict, shown: str, hidden: str) -> None:
    Device.objects.filter(pk=fleet.alice_device.pk).update(is_online=True)
    Device.objects.filter(pk=fleet.bob_device.pk).update(is_active=False)
    params = {key: value.format(alice=fleet.alice.pk) for key, value in params.items()}
    html = page(admin, "/admin/devices/device/", params)
    assert f">{shown}</a>" in html
    assert f">{hidden}</a>" not in html


def test_device_page_shows_recent_presence_and_commands(fleet: Fleet, admin: Client) -> None:
    device = fleet.alice_device
    PresenceEvent.objects.bulk_create(
        PresenceEvent(
            device=device,
            online=i % 2 == 0,
            at=T0 + timedelta(minutes=i),
            reason=f"r{i:03d}",
            source="device",
        )
        for i in range(RECENT_ROWS + 5)
    )
    command = make_command(device, "blink", state=CommandState.FAILED, error="no LED")
    html = page(admin, f"/admin/devices/device/{device.pk}/change/")
    newest, oldest_shown, too_old = RECENT_ROWS + 4, 5, 4
    assert f"r{newest:03d}" in html
    assert f"r{oldest_shown:03d}" in html
    assert f"r{too_old:03d}" not in html
    assert f'href="/admin/commands/command/{command.pk}/change/">blink</a>' in html
    assert "no LED" in html
    assert 'name="recent_presence"' not in html  # shown, not a form field


def test_add_device_page_renders(admin: Client) -> None:
    html = page(admin, "/admin/devices/device/add/")
    assert "Presence history" not in html


def test_command_list_filters_by_state_and_device(fleet: Fleet, admin: Client) -> None:
    make_command(fleet.alice_device, "reboot", state=CommandState.SUCCEEDED)
    make_command(fleet.bob_device, "water", state=CommandState.TIMED_OUT)
    by_state = page(admin, "/admin/commands/command/", {"state__exact": "timed_out"})
    assert ">water<" in by_state and ">reboot<" not in by_state
    by_device = page(admin, "/admin/commands/command/", {"device__id__exact": fleet.alice_device.pk})
    assert ">reboot<" in by_device and ">water<" not in by_device
    assert page(admin, "/admin/commands/command/", {"q": "not-a-uuid"})


def test_command_page_shows_its_state_history_read_only(fleet: Fleet, admin: Client) -> None:
    command = make_command(
        fleet.alice_device,
        "reboot",
        state=CommandState.SUCCEEDED,
        sent_at=T0,
        delivered_at=T0,
        succeeded_at=T0,
    )
    html = page(admin, f"/admin/commands/command/{command.pk}/change/")
    assert "State history" in html
    assert "Succeeded at" in html
    assert 'name="state"' not in html
    assert admin.get("/admin/commands/command/add/").status_code == 403
    changed = admin.post(f"/admin/commands/command/{command.pk}/change/", {"state": "failed"})
    assert changed.status_code == 403
    assert Command.objects.get(pk=command.pk).state == CommandState.SUCCEEDED


def test_token_admin_renders(fleet: Fleet, admin: Client) -> None:
    assert page(admin, "/admin/authtoken/tokenproxy/")
    assert page(admin, "/admin/authtoken/tokenproxy/add/")
