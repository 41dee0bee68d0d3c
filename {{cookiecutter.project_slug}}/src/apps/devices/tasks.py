"""Periodic tasks of the devices app (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

import logging

from celery import shared_task

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
