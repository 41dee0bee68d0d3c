from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.mqtt_service.connection import client_id_for, client_id_help
from apps.mqtt_service.handler_service import HandlerService
from apps.mqtt_service.management.commands._service_runner import run_service
from apps.mqtt_service.topics import DEFAULT_SCHEME

# A retiring replica stops once its session has delivered nothing for this long.
RETIRE_IDLE_SECONDS = 2.0


class Command(BaseCommand):
    help = "Receive device messages (shared subscription) and route them to handlers until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client-id", help=client_id_help("handler"))
        parser.add_argument(
            "--workers", type=int, default=1000, help="concurrent message handlers (batches grow with them)"
        )
        parser.add_argument(
            "--session-expiry",
            type=int,
            default=3600,
            help="seconds the broker keeps this replica's session (and queues its messages) while it is away",
        )
        parser.add_argument(
            "--retire",
            action="store_true",
            help="for a replica being removed (fewer handler replicas): leave the shared group, handle what "
            "its session still holds, remove the session from the broker and exit",
        )
        parser.add_argument(
            "--shared-group",
            default=DEFAULT_SCHEME.shared_group,
            help="shared-subscription group to join (another group gets its own copy of every message)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        client_id = client_id_for("handler", options["client_id"])
        scheme = DEFAULT_SCHEME
        if options["shared_group"] != scheme.shared_group:
            scheme = type(scheme)(
                scheme.device_prefix, scheme.command_prefix, scheme.kinds, options["shared_group"]
            )
        run_service(
            lambda: HandlerService(
                client_id=client_id,
                scheme=scheme,
                workers=options["workers"],
                session_expiry=options["session_expiry"],
                metrics_redis_url=settings.REDIS_PUBLISH_QUEUE_URL,
                retire_after_idle=RETIRE_IDLE_SECONDS if options["retire"] else None,
            )
        )
