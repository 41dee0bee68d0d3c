from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.devices.passwords import hash_password, validate_device_password, verify_password
from apps.devices.usernames import (
    MAX_USERNAME_LENGTH,
    RESERVED_USERNAMES,
    USERNAME_DB_REGEX,
    validate_device_username,
)


class Device(models.Model):
    """An MQTT client identity. EMQX reads `password_hash` and `salt` of active rows to authenticate it."""

    username = models.CharField(
        max_length=MAX_USERNAME_LENGTH,
        unique=True,
        validators=[validate_device_username],
        help_text="MQTT username: lower-case letters, digits, '_' and '-'; part of the device's topics.",
    )
    name = models.CharField(max_length=200, blank=True, help_text="A human-readable label.")
    password_hash = models.CharField(max_length=255, blank=True, default="")
    salt = models.CharField(max_length=64, blank=True, default="")
    is_active = models.BooleanField(default=True, help_text="Inactive devices are refused by the broker.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="devices",
        help_text="The user who sees this device's live events (staff see every device).",
    )
    last_status = models.JSONField(null=True, blank=True)
    # The newest message of each kind: {"<kind>": {"data": {...}, "at": "<ISO 8601>", "ts": <ms>}}, so a fleet
    # list reads every device's latest values without touching the history.
    latest = models.JSONField(default=dict, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="When it last sent anything.")
    # Presence: online is decided by the newest presence event applied (see apps.devices.presence).
    is_online = models.BooleanField(default=False, db_index=True)
    last_connected_at = models.DateTimeField(null=True, blank=True)
    last_disconnected_at = models.DateTimeField(null=True, blank=True)
    last_disconnect_reason = models.CharField(max_length=64, blank=True, default="")
    # Token the device sent with its last {"online": true}: its Last Will names the connection it belongs to,
    # so the will of an older connection never marks a reconnected device offline.
    connection_id = models.CharField(max_length=64, blank=True, default="")
    inactivity_timeout = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds of silence after which the device is marked offline; empty: the project default "
        "(DEVICE_INACTIVITY_TIMEOUT).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["username"]
        constraints = [
            # The database refuses what the validator refuses, even for rows written around the ORM's checks.
            models.CheckConstraint(
                condition=Q(username__regex=USERNAME_DB_REGEX) & ~Q(username__in=sorted(RESERVED_USERNAMES)),
                name="devices_device_username_mqtt_safe",
                violation_error_message="This device username is not allowed.",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.username

    def set_password(self, raw: str) -> None:
        """Validate and hash `raw` with the configured scheme (the caller saves the device)."""
        validate_device_password(raw, self.username)
        self.password_hash, self.salt = hash_password(raw)

    def check_password(self, raw: str) -> bool:
        return verify_password(raw, self.password_hash, self.salt)


class DeviceEvent(models.Model):
    """A message a device sent (every kind but `status`): the telemetry history, kept for
    TELEMETRY_RETENTION_DAYS."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=64)
    payload = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["device", "-received_at"], name="devices_event_device_time"),
            models.Index(fields=["device", "kind", "-received_at"], name="devices_event_device_kind_time"),
        ]

    def __str__(self) -> str:
        return f"{self.device.username} {self.kind} @ {self.received_at:%Y-%m-%d %H:%M:%S}"


class PresenceEvent(models.Model):
    """A change of a device's online state that was applied: its presence history."""

    class Source(models.TextChoices):
        BROKER = "broker", "broker client event"
        DEVICE = "device", "device presence message or Last Will"
        INACTIVITY = "inactivity", "inactivity sweep"
        ACTIVITY = "activity", "a message after an inactivity timeout"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="presence_events")
    online = models.BooleanField()
    at = models.DateTimeField(help_text="When it happened, by the clock of its source.")
    reason = models.CharField(max_length=64, blank=True, default="")
    source = models.CharField(max_length=16, choices=Source.choices)
    recorded_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["device", "-at"], name="devices_presence_device_time")]

    def __str__(self) -> str:
        state = "online" if self.online else "offline"
        return f"{self.device.username} {state} @ {self.at:%Y-%m-%d %H:%M:%S}"
