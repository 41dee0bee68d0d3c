from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.devices.management.commands._output import show_password_once
from apps.devices.models import Device
from apps.devices.passwords import generate_device_password


class Command(BaseCommand):
    help = "Create a device with a freshly generated password, printed once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="MQTT username (lower-case letters, digits, '_' and '-').")
        parser.add_argument("--name", default="", help="A human-readable label.")
        parser.add_argument("--owner", help="Django username of the user who sees this device's events.")

    def handle(self, *args: object, **options: object) -> None:
        username = str(options["username"])
        owner = None
        if options["owner"]:
            user_model = get_user_model()
            try:
                owner = user_model.objects.get(**{user_model.USERNAME_FIELD: options["owner"]})
            except user_model.DoesNotExist as exc:
                raise CommandError(f"No user named {options['owner']!r}.") from exc

        password = generate_device_password()
        device = Device(username=username, name=str(options["name"]), owner=owner)
        device.set_password(password)
        try:
            device.full_clean()
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
            ) from exc
        with transaction.atomic():
            device.save()
        show_password_once(self, device.username, password)
