"""Who sees which device: its owner, and staff every device. Everything else answers 404, never 403, so a
user cannot tell another user's device from one that does not exist."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from apps.commands.models import Command
from apps.devices.models import Device


def sees_every_device(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Staff, as for the WebSocket staff group."""
    return bool(user.is_staff or user.is_superuser)


def visible_devices(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Device]:
    devices = Device.objects.all()
    if sees_every_device(user):
        return devices
    return devices.filter(owner_id=user.pk)


def visible_commands(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Command]:
    commands = Command.objects.select_related("device")
    if sees_every_device(user):
        return commands
    return commands.filter(device__owner_id=user.pk)
