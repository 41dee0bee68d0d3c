"""Periodic tasks of the devices app (scheduled by CELERY_BEAT_SCHEDULE in config/settings.py)."""

import logging

from celery import shared_task

from apps.devices.presence.inactivity import sweep_inactive_devices
from apps.devices.retention import PruneAlreadyRunningError, prune_telemetry

logger = logging.getLogger(__name__)


@shared_task
def prune_telemetry_history() -> dict[str, int]:
    """Delete telemetry and presence history older than TELEMETRY_RETENTION_DAYS; rows deleted per table."""
    try:
        results = prune_telemetry()
    except PruneAlreadyRunningError:
        logger.info("telemetry pruning skipped: the previous run is still going")
        return {}
    return {result.table: result.deleted for result in results}


@shared_task(name="apps.devices.tasks.sweep_inactive_devices")
def sweep_inactive_devices_task() -> int:
    """Mark devices silent for longer than their inactivity timeout offline; returns how many."""
    return sweep_inactive_devices()
