"""Periodic task: commands past their deadline end as expired (never sent) or timed_out (never answered)."""

import logging

from celery import shared_task
from django.utils import timezone

from apps.commands.events import push_states
from apps.commands.transitions import sweep_deadlines

logger = logging.getLogger(__name__)


@shared_task
def sweep_command_deadlines() -> dict[str, int]:
    """Run by beat every COMMAND_SWEEP_INTERVAL seconds (settings.CELERY_BEAT_SCHEDULE)."""
    counts, batches = sweep_deadlines(timezone.now())
    for changed in batches:
        push_states(changed)
    if counts:
        logger.info("command deadline sweep: %s", counts)
    return counts
