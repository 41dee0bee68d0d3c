"""Checks of the services the backend depends on. Each returns a small JSON-ready dict and never raises.

A result holds the check's state ("ok" or "down") and details (latency, or the error with hosts and ports):
`public_view` keeps only the state, for callers who are not staff; the details always go to the log.
"""

import logging
import socket
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

CheckResult = dict[str, object]


def _run(name: str, probe: Callable[[], None]) -> CheckResult:
    started = time.monotonic()
    try:
        probe()
    except Exception as exc:  # any failure means "down"; the reason goes to the log (and to staff)
        logger.warning("Health check %s failed: %s: %s", name, type(exc).__name__, exc)
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_database() -> CheckResult:
    def probe() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    return _run("database", probe)


def check_redis() -> CheckResult:
    def probe() -> None:
        timeout = settings.HEALTH_CHECK_TIMEOUT
        client = redis.Redis.from_url(
            settings.REDIS_CACHE_URL, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            client.ping()
        finally:
            client.close()

    return _run("redis", probe)


def check_broker() -> CheckResult:
    """A TCP connect to the MQTT listener: cheap, and needs no broker credentials."""

    def probe() -> None:
        address = (settings.MQTT["host"], int(settings.MQTT["port"]))
        with socket.create_connection(address, timeout=settings.HEALTH_CHECK_TIMEOUT):
            pass

    return _run("broker", probe)


CHECKS: dict[str, Callable[[], CheckResult]] = {
    "database": check_database,
    "redis": check_redis,
    "broker": check_broker,
}


def run_checks() -> tuple[bool, dict[str, CheckResult]]:
    """Run every check; the first value is True only when all of them pass."""
    results = {name: check() for name, check in CHECKS.items()}
    return all(result["status"] == "ok" for result in results.values()), results


def public_view(results: dict[str, CheckResult]) -> dict[str, CheckResult]:
    """Only the state of each check: an error's text names hosts and ports, which anonymous callers (and
    anyone who can reach a load balancer's health URL) have no business knowing."""
    return {name: {"status": result["status"]} for name, result in results.items()}
