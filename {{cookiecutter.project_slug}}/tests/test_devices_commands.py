from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.devices.models import Device

pytestmark = pytest.mark.django_db


def printed_password(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Device password: ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix("Device password: ")


def test_create_device_prints_a_password_that_verifies(make_user):
    owner = make_user("alice")
    out = StringIO()
    call_command("create_device", "device_001", "--name", "Boiler", "--owner", "alice", stdout=out)
    password = printed_password(out.getvalue())
    assert "shown only once" in out.getvalue()
    device = Device.objects.get(username="device_001")
    assert device.name == "Boiler"
    assert device.owner == owner
    assert device.check_password(password)
    assert len(password) >= 32


@pytest.mark.parametrize("username", ["Device", "dev/1", "svc_handler", "dev+"])
def test_create_device_refuses_bad_usernames(username):
    with pytest.raises(CommandError, match="username"):
        call_command("create_device", username, stdout=StringIO())
    assert not Device.objects.exists()


def test_create_device_refuses_duplicates_and_unknown_owner():
    call_command("create_device", "dup", stdout=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_device", "dup", stdout=StringIO())
    with pytest.raises(CommandError, match="No user named"):
        call_command("create_device", "other", "--owner", "nobody", stdout=StringIO())


def test_set_device_password_rotates():
    out = StringIO()
    call_command("create_device", "rotating", stdout=out)
    old = printed_password(out.getvalue())
    out = StringIO()
    call_command("set_device_password", "rotating", stdout=out)
    new = printed_password(out.getvalue())
    device = Device.objects.get(username="rotating")
    assert new != old
    assert device.check_password(new)
    assert not device.check_password(old)


def test_set_device_password_takes_a_given_password_and_refuses_short_ones():
    call_command("create_device", "given", stdout=StringIO())
    call_command("set_device_password", "given", "--password", "chosen-by-a-human-1", stdout=StringIO())
    assert Device.objects.get(username="given").check_password("chosen-by-a-human-1")
    with pytest.raises(CommandError, match="at least 16"):
        call_command("set_device_password", "given", "--password", "short", stdout=StringIO())
    with pytest.raises(CommandError, match="No device named"):
        call_command("set_device_password", "missing", stdout=StringIO())


@pytest.mark.parametrize(
    "weak", ["a" * 16, " " * 16, "1234567890123456", "qwertyuiopasdfgh", "given-given-given"]
)
def test_set_device_password_refuses_an_easy_to_guess_password_with_the_reason(weak):
    call_command("create_device", "given", stdout=StringIO())
    before = Device.objects.get(username="given").password_hash
    with pytest.raises(CommandError, match=r"too easy to guess: .+ needs 10\^12"):
        call_command("set_device_password", "given", "--password", weak, stdout=StringIO())
    assert Device.objects.get(username="given").password_hash == before
