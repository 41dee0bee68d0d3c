"""Which devices a signed-in user may see: their own; staff see every device."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from apps.devices.models import Device


def visible_devices(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Device]:
    devices = Device.objects.select_related("owner")
    if user.is_staff or user.is_superuser:
        return devices
    return devices.filter(owner_id=user.pk)
