"""Command round trip of a baked project: send_command -> publisher -> broker -> device -> reply -> handler ->
`succeeded`, under a steady rate of commands. Figures, no assertions.

    python3 bench/commands.py --project <baked project> [--rate 300] [--seconds 10] [--devices 50]

Run it with the Python of the baked project's .venv (it imports the project). Like measure.py it starts its
own Mosquitto, its own Postgres database (dropped at the end) and the project's publisher and handler services
as processes, under Redis keys unique to this run. The devices are aiomqtt clients in this process that answer
`received` then `ok` at once, as the README's device does. The latency of a command is its `succeeded_at -
queued_at` (both stamped by the backend), so it covers the queue, the publisher, the broker both ways, the
device and the handler.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
from measure import Bench, _percentile, workdir

logger = logging.getLogger("bench")


async def answer_commands(client: aiomqtt.Client) -> None:
    async for message in client.messages:
        command = json.loads(message.payload)
        reply_to = message.properties.ResponseTopic
        await client.publish(reply_to, json.dumps({"id": command["id"], "status": "received"}), qos=1)
        await client.publish(reply_to, json.dumps({"id": command["id"], "status": "ok", "result": {}}), qos=1)


async def run_devices(bench: Bench, usernames: list[str], ready: asyncio.Event, stop: asyncio.Event) -> None:
    from apps.mqtt_service.topics import DEFAULT_SCHEME

    async def one(username: str, connected: asyncio.Event) -> None:
        async with aiomqtt.Client(
            "127.0.0.1",
            bench.broker_port,
            identifier=f"{bench.tag}-{username}",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:
            await client.subscribe(DEFAULT_SCHEME.command_topic(username), qos=1)
            connected.set()
            answering = asyncio.create_task(answer_commands(client))
            await stop.wait()
            answering.cancel()

    events = [asyncio.Event() for _ in usernames]
    tasks = [asyncio.create_task(one(name, event)) for name, event in zip(usernames, events, strict=True)]
    await asyncio.gather(*(event.wait() for event in events))
    ready.set()
    await asyncio.gather(*tasks, return_exceptions=True)


async def measure(bench: Bench, rate: float, seconds: float, device_count: int) -> dict[str, Any]:
    from apps.commands.models import Command, CommandState
    from apps.commands.services import asend_command
    from apps.devices.models import Device
    from channels.db import database_sync_to_async

    usernames = [f"benchcmd{i}" for i in range(device_count)]
    devices = await database_sync_to_async(
        lambda: Device.objects.bulk_create(Device(username=name, name=name) for name in usernames)
    )()
    ready, stop = asyncio.Event(), asyncio.Event()
    fleet = asyncio.create_task(run_devices(bench, usernames, ready, stop))
    await asyncio.wait_for(ready.wait(), 60)
    total = int(rate * seconds)
    started = time.monotonic()
    sends = []
    for index in range(total):
        # Paced: command i leaves at i / rate seconds, whatever the previous ones are doing.
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sends.append(asyncio.create_task(asend_command(devices[index % device_count], "ping", timeout=60)))
    commands = await asyncio.gather(*sends)
    send_seconds = time.monotonic() - started
    ids = [command.pk for command in commands]

    def finished() -> int:
        return Command.objects.filter(pk__in=ids, state=CommandState.SUCCEEDED).count()

    deadline = time.monotonic() + 60
    while await database_sync_to_async(finished)() < total and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    rows = await database_sync_to_async(
        lambda: list(
            Command.objects.filter(pk__in=ids).values_list("state", "queued_at", "sent_at", "succeeded_at")
        )
    )()
    stop.set()
    await fleet
    done_rows = [(queued, sent, done) for _, queued, sent, done in rows if None not in (sent, done)]
    latencies = [(done - queued).total_seconds() * 1000 for queued, _, done in done_rows]
    # Where the time goes: waiting in the queue and publishing, then the device and the handler.
    to_sent = [(sent - queued).total_seconds() * 1000 for queued, sent, _ in done_rows]
    sent_to_done = [(done - sent).total_seconds() * 1000 for _, sent, done in done_rows]
    return {
        "commands": total,
        "succeeded": sum(1 for state, *_ in rows if state == CommandState.SUCCEEDED),
        "offered_rate": rate,
        "achieved_send_rate": round(total / send_seconds, 1),
        "p50_ms": round(_percentile(latencies, 50), 1),
        "p99_ms": round(_percentile(latencies, 99), 1),
        "max_ms": round(max(latencies, default=float("nan")), 1),
        "p50_ms_queued_to_sent": round(_percentile(to_sent, 50), 1),
        "p50_ms_sent_to_succeeded": round(_percentile(sent_to_done, 50), 1),
    }


async def main_async(args: argparse.Namespace) -> int:
    with workdir(args.keep) as tmp:
        bench = Bench(project=args.project, workdir=tmp, messages=0)
        os.environ.update(bench.env)
        # Services and this process keep their database connections, as a deployment under load would.
        os.environ["POSTGRES_CONN_MAX_AGE"] = "60"
        sys.path.insert(0, str(args.project / "src"))
        try:
            await bench.start()
            handler_id = bench.next_id("handler")
            await bench.start_service(
                "handler",
                [sys.executable, "src/manage.py", "run_mqtt_handler", "--client-id", handler_id],
                ready_text="subscribed",
            )
            import django

            django.setup()
            result = await measure(bench, args.rate, args.seconds, args.devices)
        finally:
            await bench.stop()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", type=Path, required=True, help="a baked project with its .venv deps")
    parser.add_argument("--rate", type=float, default=300.0, help="commands per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (service logs)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
