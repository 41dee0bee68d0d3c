from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.mqtt_service.metrics import MIRROR_INTERVAL_SECONDS, read_all
from apps.mqtt_service.publish_queue import PublishQueue, QueueStats, queue_stats


class Command(BaseCommand):
    help = (
        "Counters of every MQTT handler/publisher process (one entry per process start, kept for a while "
        "after it stops), and the publish queue's state."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        queue = PublishQueue.from_settings()
        client = redis.Redis.from_url(settings.REDIS_PUBLISH_QUEUE_URL)
        replicas = read_all(client)
        stats = asyncio.run(_queue_stats(queue))
        if options["json"]:
            self.stdout.write(json.dumps({"queue": stats.__dict__, "replicas": replicas}, indent=2))
            return
        self.stdout.write(f"publish queue {queue.stream}")
        self.stdout.write(f"  waiting (stream length): {stats.length}")
        self.stdout.write(f"  in flight (pending):     {stats.pending}")
        self.stdout.write(f"  dead letters ({queue.dead_letter_stream}): {stats.dead_letters}")
        if not replicas:
            self.stdout.write("no live replica has reported counters")
        now = time.time()
        for name, counters in replicas.items():
            self.stdout.write(f"{name}{_freshness(counters, now)}")
            for key, value in sorted(counters.items()):
                self.stdout.write(f"  {key}: {value}")


def _freshness(counters: dict[str, str], now: float) -> str:
    """Each key holds one process start's counters; one not refreshed lately belongs to a stopped process."""
    try:
        age = now - float(counters["updated_at"])
    except (KeyError, ValueError):
        return ""
    if age > 2 * MIRROR_INTERVAL_SECONDS:
        return f" (not updated for {age:.0f}s: process stopped; the entry expires by itself)"
    return ""


async def _queue_stats(queue: PublishQueue) -> QueueStats:
    client = queue.async_client()
    try:
        return await queue_stats(client, queue)
    finally:
        await client.aclose()
