"""A command sent to a device and what became of it."""

import uuid

from django.conf import settings
from django.db import models


class CommandState(models.TextChoices):
    QUEUED = "queued", "queued"
    SENT = "sent", "sent (the broker has it)"
    DELIVERED = "delivered", "delivered (the device has it)"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    EXPIRED = "expired", "expired (not sent before its deadline)"
    TIMED_OUT = "timed_out", "timed out (no answer before its deadline)"


# The timestamp each state sets, in the order a command can pass them.
STATE_TIMESTAMPS = (
    "queued_at",
    "sent_at",
    "delivered_at",
    "succeeded_at",
    "failed_at",
    "expired_at",
    "timed_out_at",
)

TERMINAL_STATES = frozenset(
    {CommandState.SUCCEEDED, CommandState.FAILED, CommandState.EXPIRED, CommandState.TIMED_OUT}
)


class Command(models.Model):
    """States only move forward (queued -> sent -> delivered -> succeeded | failed, or expired / timed_out);
    each has its own timestamp, so the row is also the command's history."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="commands")
    name = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=CommandState.choices, default=CommandState.QUEUED)
    timeout = models.PositiveIntegerField(help_text="Seconds the device has to answer, from queued_at.")
    deadline = models.DateTimeField(
        help_text="queued_at + timeout: not sent by then -> expired; not answered by then -> timed out."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    timed_out_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-queued_at"]
        indexes = [
            models.Index(fields=["device", "-queued_at"], name="commands_device_time"),
            models.Index(fields=["state", "deadline"], name="commands_open_by_deadline"),
        ]

    def __str__(self) -> str:
        return f"{self.name} -> {self.device.username} ({self.state})"
