"""Background tasks of the main app. `example_task.delay("Hello")` shows the worker is alive."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task
def example_task(message: str) -> str:
    logger.info("example_task received: %s", message)
    return f"Processed: {message}"
