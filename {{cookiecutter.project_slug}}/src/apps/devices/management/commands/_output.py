"""How the provisioning commands hand a password to the operator: once, with a warning."""

from django.core.management.base import BaseCommand


def show_password_once(command: BaseCommand, username: str, password: str) -> None:
    command.stdout.write(f"Device username: {username}")
    command.stdout.write(f"Device password: {password}")
    command.stdout.write(
        command.style.WARNING(
            "Store this password now (e.g. in the device's configuration). It is shown only once: "
            "the database keeps only its hash."
        )
    )
