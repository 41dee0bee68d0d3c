from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.simulator.credentials import CredentialsError, find_owner, provision, read_csv
from apps.simulator.fleet import REPLY_MODES, FleetConfig, run_fleet
from apps.simulator.readings import kinds_to_send

# After Ctrl-C every device says goodbye and disconnects, each step bounded by the MQTT timeout. Should that
# still take longer, the process prints where it is stuck and exits: Ctrl-C always ends it.
STOP_GRACE_SECONDS = 30


class Command(BaseCommand):
    help = (
        "Connect simulated devices that speak the device contract (presence, Last Will, every message kind, "
        "command replies) until Ctrl-C. They log in with real credentials, so EMQX authenticates them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=10, help="devices to simulate (default 10)")
        parser.add_argument(
            "--rate",
            type=float,
            default=None,
            help="messages per second, all devices together (default: count)",
        )
        parser.add_argument("--owner", help="Django username that owns the devices this command creates")
        parser.add_argument(
            "--prefix", default="sim", help="usernames of created devices: <prefix>-0001, ..."
        )
        parser.add_argument(
            "--csv", type=Path, help="log in as existing devices instead: a file of username,password lines"
        )
        parser.add_argument("--kinds", help="comma-separated kinds to send (default: every answered kind)")
        parser.add_argument(
            "--replies",
            choices=REPLY_MODES,
            default="mixed",
            help="how devices answer commands: ok, error, silent (never: they time out) or mixed (default)",
        )
        parser.add_argument("--reply-delay", type=float, default=0.5, help="seconds before a final answer")
        parser.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
        parser.add_argument("--connect-rate", type=float, default=500.0, help="new connections per second")
        parser.add_argument("--host", default=settings.MQTT["host"], help="MQTT broker host")
        parser.add_argument("--port", type=int, default=int(settings.MQTT["port"]), help="MQTT broker port")
        parser.add_argument("--seed", type=int, help="random seed, for repeatable readings")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["count"] < 1 and not options["csv"]:
            raise CommandError("--count must be at least 1")
        try:
            kinds = kinds_to_send(options["kinds"].split(",") if options["kinds"] else None)
            if options["csv"]:
                credentials = read_csv(options["csv"])
            else:
                credentials = provision(options["prefix"], options["count"], find_owner(options["owner"]))
        except (CredentialsError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        rate = options["rate"] if options["rate"] is not None else float(len(credentials))
        if rate <= 0 or options["connect_rate"] <= 0:
            raise CommandError("--rate and --connect-rate must be positive")
        config = FleetConfig(
            host=options["host"],
            port=options["port"],
            kinds=kinds,
            rate=rate,
            reply_mode=options["replies"],
            reply_delay=options["reply_delay"],
            connect_rate=options["connect_rate"],
            seed=options["seed"],
        )
        self.stderr.write(
            f"simulating {len(credentials)} devices ({credentials[0].username} ...) on "
            f"{config.host}:{config.port}, {rate:g} messages/s, replies {config.reply_mode}; Ctrl-C stops"
        )
        try:
            stats = asyncio.run(self._run(credentials, config, options["duration"]))
        finally:
            faulthandler.cancel_dump_traceback_later()
        self.stdout.write(f"stopped: {stats.line(len(credentials))}")

    async def _run(self, credentials: list, config: FleetConfig, duration: float | None) -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            if not stop.is_set():
                stop.set()
                faulthandler.dump_traceback_later(STOP_GRACE_SECONDS, exit=True)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, request_stop)
        if duration is not None:
            loop.call_later(duration, request_stop)
        interactive = sys.stderr.isatty()

        def report(line: str) -> None:
            # One line rewritten in place on a terminal; plain lines (every few seconds) in a log.
            if interactive:
                self.stderr.write(f"\r{line}", ending="")
                self.stderr.flush()
            else:
                self.stderr.write(line)

        return await run_fleet(credentials, config, stop, report, report_every=1.0 if interactive else 5.0)
