"""The credentials simulated devices log in with: devices this command creates (or takes over) itself, or
username/password pairs of existing devices read from a CSV file."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.devices.models import Device
from apps.devices.passwords import generate_device_password, hash_password
from apps.devices.usernames import validate_device_username


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class CredentialsError(ValueError):
    """Bad input (a CSV row, an unknown owner): the message says which and why."""


def find_owner(username: str | None) -> AbstractBaseUser | None:
    if not username:
        return None
    user_model = get_user_model()
    try:
        return user_model.objects.get(**{user_model.USERNAME_FIELD: username})
    except user_model.DoesNotExist as exc:
        raise CredentialsError(f"no user named {username!r}: create it first (createsuperuser)") from exc


def provision(prefix: str, count: int, owner: AbstractBaseUser | None) -> list[Credentials]:
    """Devices <prefix>-0001 ... with fresh random passwords, owned by `owner`; existing ones of those names
    are reused and get a new password (a simulator never knows the old one)."""
    usernames = [f"{prefix}-{index:04d}" for index in range(1, count + 1)]
    for username in usernames[:1] + usernames[-1:]:
        try:
            validate_device_username(username)
        except ValidationError as exc:
            raise CredentialsError(
                f"--prefix {prefix!r} gives device username {username!r}: {exc.messages[0]}"
            ) from exc
    credentials = [Credentials(username, generate_device_password()) for username in usernames]
    existing = {device.username: device for device in Device.objects.filter(username__in=usernames)}
    created, updated = [], []
    for item in credentials:
        password_hash, salt = hash_password(item.password)
        device = existing.get(item.username)
        if device is None:
            created.append(
                Device(
                    username=item.username,
                    name=f"Simulated {item.username}",
                    owner=owner,
                    password_hash=password_hash,
                    salt=salt,
                )
            )
        else:
            device.password_hash, device.salt, device.is_active = password_hash, salt, True
            device.owner = owner if owner is not None else device.owner
            updated.append(device)
    with transaction.atomic():
        Device.objects.bulk_create(created, batch_size=1000)
        Device.objects.bulk_update(updated, ["password_hash", "salt", "is_active", "owner"], batch_size=1000)
    return credentials


def read_csv(path: Path) -> list[Credentials]:
    """`username,password` per line (a header line naming those columns is allowed)."""
    credentials = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (
                number == 1 and [cell.strip().lower() for cell in row[:2]] == ["username", "password"]
            ):
                continue
            if len(row) < 2 or not row[0].strip() or not row[1]:
                raise CredentialsError(f"{path}:{number}: expected username,password")
            credentials.append(Credentials(row[0].strip(), row[1]))
    if not credentials:
        raise CredentialsError(f"{path}: no username,password rows")
    return credentials
