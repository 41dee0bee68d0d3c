"""Periodic tasks of the devices app (scheduled by CELERY_BEAT_SCHEDULE in config/settings.py)."""

from celery import shared_task

from apps.devices.presence.inactivity import sweep_inactive_devices


@shared_task(name="apps.devices.tasks.sweep_inactive_devices")
def sweep_inactive_devices_task() -> int:
    """Mark devices silent for longer than their inactivity timeout offline; returns how many."""
    return sweep_inactive_devices()
