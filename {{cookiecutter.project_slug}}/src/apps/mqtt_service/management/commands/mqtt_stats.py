from __future__ import annotations

import asyncio
import json
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.mqtt_service.metrics import read_all
from apps.mqtt_service.publish_queue import PublishQueue, QueueStats, queue_stats


class Command(BaseCommand):
    help = "Counters of every live MQTT handler/publisher replica, and the publish queue's state."

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
        for name, counters in replicas.items():
            self.stdout.write(name)
            for key, value in sorted(counters.items()):
                self.stdout.write(f"  {key}: {value}")


async def _queue_stats(queue: PublishQueue) -> QueueStats:
    client = queue.async_client()
    try:
        return await queue_stats(client, queue)
    finally:
        await client.aclose()
