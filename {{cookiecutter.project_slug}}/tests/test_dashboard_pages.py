"""The dashboard's pages as the server renders them: who may see what, and what the first paint shows.
The live behaviour in a real browser is tests/test_dashboard_browser.py."""

import re
import uuid

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from apps.commands.models import Command
from apps.devices.models import Device, DeviceEvent, PresenceEvent
from apps.mqtt_service import topology

pytestmark = pytest.mark.django_db


def device(owner=None, **fields) -> Device:
    return Device.objects.create(username=f"dev-{uuid.uuid4().hex[:8]}", owner=owner, **fields)


def test_the_index_leads_to_the_fleet_and_the_seed_urls_stay(client) -> None:
    assert client.get("/").headers["Location"] == reverse("dashboard:fleet")
    assert client.get("/health/").status_code in (200, 503)
    assert client.get("/admin/").status_code == 302  # to the admin's own login


def test_pages_ask_anonymous_visitors_to_sign_in(client) -> None:
    for url in (reverse("dashboard:fleet"), reverse("dashboard:device", args=["any-device"])):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith(reverse("dashboard:login"))


def test_a_user_who_is_not_staff_signs_in_and_lands_on_the_fleet(client, make_user) -> None:
    user = make_user()
    user.set_password("a long enough password")
    user.save()
    wrong = client.post(reverse("dashboard:login"), {"username": user.username, "password": "wrong"})
    assert "Wrong username or password." in wrong.content.decode()
    response = client.post(
        reverse("dashboard:login"), {"username": user.username, "password": "a long enough password"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == reverse("dashboard:fleet")


def test_a_user_sees_only_their_devices_and_staff_see_all(client, make_user) -> None:
    alice, bob = make_user(), make_user()
    mine = device(owner=alice, name="Alice's pump", is_online=True)
    theirs = device(owner=bob, name="Bob's meter")
    client.force_login(alice)
    page = client.get(reverse("dashboard:fleet")).content.decode()
    assert mine.username in page and "Alice&#x27;s pump" in page
    assert theirs.username not in page
    assert client.get(reverse("dashboard:device", args=[theirs.username])).status_code == 404
    assert client.get(reverse("dashboard:device", args=[mine.username])).status_code == 200

    client.force_login(make_user(is_staff=True))
    page = client.get(reverse("dashboard:fleet")).content.decode()
    assert mine.username in page and theirs.username in page


def test_the_fleet_page_counts_and_labels_states_in_words(client, make_user) -> None:
    user = make_user()
    now = timezone.now()
    kind = topology.DEVICE_MESSAGE_KINDS[0]
    device(
        owner=user,
        is_online=True,
        last_seen_at=now,
        latest={kind: {"data": {"temp": 21.5}, "at": now.isoformat()}},
    )
    device(owner=user)
    device(owner=user)
    client.force_login(user)
    response = client.get(reverse("dashboard:fleet"))
    page = response.content.decode()
    assert dict(re.findall(r'data-count="(\w+)">(\d+)<', page)) == {
        "online": "1",
        "offline": "2",
        "total": "3",
    }
    rows = page.split("<template")[0]  # the rows, without the empty one that new devices are made from
    assert rows.count(">online</span>") == 1 and rows.count(">offline</span>") == 2  # words, not colours
    assert "temp 21.5" in page
    assert now.isoformat() in page


def test_the_device_page_shows_history_presence_and_commands(client, make_user) -> None:
    user = make_user()
    target = device(owner=user, name="boiler")
    now = timezone.now()
    DeviceEvent.objects.create(device=target, kind="event", payload={"code": 404}, received_at=now)
    PresenceEvent.objects.create(device=target, online=True, at=now, reason="connected", source="device")
    Command.objects.create(
        device=target,
        name="reboot",
        params={"delay": 1},
        timeout=30,
        deadline=now,
        queued_at=now,
        state="succeeded",
        result={"applied": "reboot"},
    )
    client.force_login(user)
    page = client.get(reverse("dashboard:device", args=[target.username])).content.decode()
    assert '"code": 404' in page  # the chart's and the message lists' first data
    assert '"reason": "connected"' in page
    assert ">reboot<" in page and ">succeeded<" in page and "applied reboot" in page
    assert f'data-url="/api/devices/{target.username}/commands/"' in page


def test_scripts_and_the_chart_library_are_served_locally(client, make_user) -> None:
    client.force_login(make_user())
    for name in (
        "dashboard/live.js",
        "dashboard/fleet.js",
        "dashboard/device.js",
        "dashboard/dashboard.css",
        "dashboard/vendor/uplot/uPlot.iife.min.js",
        "dashboard/vendor/uplot/LICENSE",
    ):
        assert finders.find(name), name
    pages = [client.get(reverse("dashboard:fleet")).content.decode()]
    client.logout()
    pages.append(client.get(reverse("dashboard:login")).content.decode())
    for page in pages:
        assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
        assert assets and all(asset.startswith("/static/") for asset in assets), assets  # no CDN
