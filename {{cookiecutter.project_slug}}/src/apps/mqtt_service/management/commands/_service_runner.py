"""Run a service coroutine until it returns; SIGTERM/SIGINT ask it to drain and stop (exit status 0).

The services run on uvloop when it is installed (uvicorn[standard] brings it): its faster sockets and
callbacks raised publisher and handler throughput measurably. Without it they run on the stock loop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from django.core.management.base import CommandError

from apps.mqtt_service import mqtt_internals
from apps.mqtt_service.metrics import start_prometheus_from_env
from config.startup_heap import freeze_startup_heap

logger = logging.getLogger(__name__)


class StoppableService(Protocol):
    def request_stop(self) -> None: ...

    async def run(self) -> None: ...


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_service(build: Callable[[], StoppableService]) -> None:
    factory = _loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        logger.info("event loop: %s", "uvloop" if factory else "asyncio")
        runner.run(_main(build))


async def _main(build: Callable[[], StoppableService]) -> None:
    moved = await mqtt_internals.check()
    if moved:
        # Running on internals that moved would lose acknowledgements or confirmations silently.
        raise CommandError(
            "aiomqtt/paho-mqtt internals the services rely on have changed (see apps/mqtt_service/"
            "mqtt_internals.py): " + "; ".join(moved)
        )
    start_prometheus_from_env()
    service = build()
    freeze_startup_heap()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, service, sig)
    runner: Coroutine[Any, Any, None] = service.run()
    await runner


def _on_signal(service: StoppableService, sig: signal.Signals) -> None:
    logger.info("received %s", sig.name)
    service.request_stop()
