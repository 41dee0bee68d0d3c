"""Users, devices and clients of the API tests: alice and bob own one device each, staff owns none.
Each test file wraps make_fleet() in its own `fleet` fixture."""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from apps.commands.models import Command
from apps.devices.models import Device


@dataclass
class Fleet:
    alice: Any
    bob: Any
    staff: Any
    alice_device: Device
    bob_device: Device


def client_for(user: Any) -> APIClient:
    """A logged-in browser session (CSRF checks on, as for a real browser)."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_token(client: APIClient) -> str:
    """What a browser page does: the CSRF cookie's value, sent back in the X-CSRFToken header."""
    token = secrets.token_hex(16)
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    return token


def make_command(device: Device, name: str = "reboot", **fields: Any) -> Command:
    now = timezone.now()
    values = {"timeout": 30, "queued_at": now, "deadline": now + timedelta(seconds=30), **fields}
    return Command.objects.create(device=device, name=name, **values)


def make_fleet() -> Fleet:
    users = get_user_model().objects
    # No password: hashing one costs a noticeable fraction of a second; sessions are forced.
    alice = users.create_user("alice", password=None)
    bob = users.create_user("bob", password=None)
    staff = users.create_user("staff", password=None, is_staff=True)
    return Fleet(
        alice=alice,
        bob=bob,
        staff=staff,
        alice_device=Device.objects.create(username="alice-meter", name="Kitchen meter", owner=alice),
        bob_device=Device.objects.create(username="bob-pump", name="Garden pump", owner=bob),
    )
