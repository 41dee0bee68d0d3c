from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.devices.management.commands._output import show_password_once
from apps.devices.models import Device
from apps.devices.passwords import MIN_PASSWORD_LENGTH, generate_device_password


class Command(BaseCommand):
    help = (
        "Rotate a device's password: a new random one (printed once), or the one given with --password. "
        "The old password stops working at the device's next connect."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--password",
            help="Use this password instead of generating one (it may end up in your shell history). It "
            f"must be at least {MIN_PASSWORD_LENGTH} characters and hard to guess: repeats, sequences, "
            "keyboard walks and words are refused with the reason.",
        )

    def handle(self, *args: object, **options: object) -> None:
        try:
            device = Device.objects.get(username=options["username"])
        except Device.DoesNotExist as exc:
            raise CommandError(f"No device named {options['username']!r}.") from exc

        password = str(options["password"]) if options["password"] else generate_device_password()
        try:
            device.set_password(password)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        device.save(update_fields=["password_hash", "salt", "updated_at"])
        show_password_once(self, device.username, password)
