"""Counters of both services: kept in process, mirrored to Redis for `manage.py mqtt_stats`, and optionally
exposed for Prometheus (env MQTT_METRICS_PORT).

Counters belong to one process start. Each start mirrors to a key of its own,
`<prefix><role>:<client id>:<pid>-<start ms>`, that only it refreshes: a replica restarted under the same
client id starts from zero instead of showing (and keeping alive) the failure counters of the process before
it, whose key expires METRICS_TTL_SECONDS after that process's last mirror.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter

import redis
import redis.asyncio as aredis
from django.conf import settings
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, start_http_server

logger = logging.getLogger(__name__)

# A replica that stops mirroring disappears from mqtt_stats after this long.
METRICS_TTL_SECONDS = 120
MIRROR_INTERVAL_SECONDS = 5.0

_HELP = {
    "received": "Device messages received from the broker",
    "processed": "Device messages handled successfully",
    "failed": "Device messages skipped or failed, by reason",
    "published": "Commands published and acknowledged by the broker",
    "retried": "Commands published again after a failure or a takeover",
    "dead_lettered": "Commands moved to the dead-letter stream",
    "expired": "Tracked commands not published because their deadline had passed",
    "outcome_failed": "Outcomes (sent, expired) of tracked commands that could not be recorded",
    "ws_push_failed": "WebSocket pushes that failed (the data itself was stored)",
}
_prom_counters: dict[str, PromCounter] = {}
_prom_queue_depth: Gauge | None = None


def _prom_counter(name: str) -> PromCounter:
    # prometheus_client refuses duplicate registrations; several services may share one test process.
    if name not in _prom_counters:
        labels = ["reason"] if name == "failed" else []
        _prom_counters[name] = PromCounter(f"mqtt_{name}", _HELP.get(name, name), labels)
    return _prom_counters[name]


def start_prometheus_from_env() -> int | None:
    """Serve /metrics on MQTT_METRICS_PORT if it is set; returns the port or None."""
    global _prom_queue_depth
    port = os.environ.get("MQTT_METRICS_PORT", "").strip()
    if not port:
        return None
    if _prom_queue_depth is None:
        _prom_queue_depth = Gauge("mqtt_publish_queue_depth", "Commands waiting in the publish stream")
    start_http_server(int(port))
    logger.info("Prometheus metrics on port %s", port)
    return int(port)


def metrics_key_prefix() -> str:
    """Prefix of every mirrored-counter key: the project slug's (settings.MQTT["metrics_key_prefix"])."""
    return settings.MQTT["metrics_key_prefix"]


class Metrics:
    """Per-process counters of one service replica."""

    def __init__(self, role: str, instance: str) -> None:
        self.role = role
        self.instance = instance
        self.pid = os.getpid()
        self.started_at = time.time()
        self.counts: Counter[str] = Counter()
        self.gauges: dict[str, float] = {}
        self.redis_key = f"{metrics_key_prefix()}{role}:{instance}:{self.pid}-{round(self.started_at * 1000)}"

    def inc(self, name: str, amount: int = 1, reason: str | None = None) -> None:
        key = f"{name}:{reason}" if reason else name
        self.counts[key] += amount
        counter = _prom_counter(name)
        (counter.labels(reason=reason or "") if name == "failed" else counter).inc(amount)

    def set_gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value
        if name == "queue_depth" and _prom_queue_depth is not None:
            _prom_queue_depth.set(value)

    def get(self, name: str, reason: str | None = None) -> int:
        return self.counts[f"{name}:{reason}" if reason else name]

    def snapshot(self) -> dict[str, float]:
        data: dict[str, float] = dict(self.counts)
        data.update(self.gauges)
        data["pid"] = self.pid
        data["started_at"] = round(self.started_at, 3)
        data["updated_at"] = round(time.time(), 3)
        return data

    async def mirror(self, client: aredis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hset(self.redis_key, mapping={k: str(v) for k, v in self.snapshot().items()})
        pipe.expire(self.redis_key, METRICS_TTL_SECONDS)
        await pipe.execute()

    async def mirror_forever(self, client: aredis.Redis, interval: float = MIRROR_INTERVAL_SECONDS) -> None:
        """Cheap periodic copy to Redis; a Redis outage only delays it."""
        while True:
            try:
                await self.mirror(client)
            except (redis.RedisError, OSError) as exc:
                logger.warning("could not mirror metrics to Redis: %r", exc)
            await asyncio.sleep(interval)


def read_all(client: redis.Redis) -> dict[str, dict[str, str]]:
    """Mirrored counters of every process that mirrored within METRICS_TTL_SECONDS, keyed by
    `<role>:<client id>:<pid>-<start ms>` (for the stats command)."""
    prefix = metrics_key_prefix()
    result: dict[str, dict[str, str]] = {}
    for key in sorted(client.scan_iter(match=f"{prefix}*", count=500)):
        values = client.hgetall(key)
        if values:  # expired between SCAN and HGETALL
            result[key.decode()[len(prefix) :]] = {k.decode(): v.decode() for k, v in values.items()}
    return result
