#!/bin/sh
# Celery worker: runs tasks such as apps.main.tasks.example_task.
set -eu
exec celery -A config worker --loglevel="${CELERY_LOG_LEVEL:-INFO}" --concurrency="${CELERY_WORKER_CONCURRENCY:-2}"
