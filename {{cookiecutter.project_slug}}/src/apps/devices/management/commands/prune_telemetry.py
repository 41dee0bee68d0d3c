import argparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.devices.retention import DEFAULT_BATCH_SIZE, PruneAlreadyRunningError, prune_telemetry


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, at least 1")
    return value


class Command(BaseCommand):
    help = (
        "Delete telemetry (DeviceEvent) and presence (PresenceEvent) history older than the retention "
        "period, in small batches that each commit on their own. The same code as the hourly beat task."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=_positive_int,
            default=None,
            help="Keep this many days (default: the TELEMETRY_RETENTION_DAYS setting, "
            f"{settings.TELEMETRY_RETENTION_DAYS}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the rows that would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=_positive_int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows per delete statement (default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args: object, **options: object) -> None:
        try:
            results = prune_telemetry(
                options["days"], batch_size=options["batch_size"], dry_run=options["dry_run"]
            )
        except (PruneAlreadyRunningError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        for result in results:
            cutoff = result.cutoff.isoformat(timespec="seconds")
            if result.would_delete is not None:
                self.stdout.write(
                    f"{result.table}: would delete {result.would_delete} rows older than {cutoff}"
                )
                continue
            rate = result.deleted / result.seconds if result.seconds else 0.0
            self.stdout.write(
                f"{result.table}: deleted {result.deleted} rows older than {cutoff} in {result.batches} "
                f"batches, {result.seconds:.2f}s ({rate:.0f} rows/s, "
                f"longest batch {result.max_batch_seconds:.3f}s)"
            )
