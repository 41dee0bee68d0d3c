from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.mqtt_service.connection import client_id_for, client_id_help
from apps.mqtt_service.management.commands._service_runner import run_service
from apps.mqtt_service.publish_queue import PublishQueue
from apps.mqtt_service.publisher_service import PublisherService


class Command(BaseCommand):
    help = "Publish queued commands from the Redis stream to the broker until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client-id", help=client_id_help("publisher"))
        parser.add_argument("--window", type=int, default=100, help="publishes in flight at once")
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=30_000,
            help="take over entries another replica has held this long without acknowledging",
        )
        parser.add_argument("--max-deliveries", type=int, default=5, help="attempts before dead-lettering")

    def handle(self, *args: Any, **options: Any) -> None:
        client_id = client_id_for("publisher", options["client_id"])
        run_service(
            lambda: PublisherService(
                PublishQueue.from_settings(),
                client_id=client_id,
                window=options["window"],
                claim_idle_ms=options["claim_idle_ms"],
                max_deliveries=options["max_deliveries"],
            )
        )
