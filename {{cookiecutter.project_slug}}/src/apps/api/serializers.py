"""The JSON shapes of the API (FLEET contract). A command is rendered by apps.commands.representation, the
one shape it has everywhere (API and WebSocket); its fields are declared here for the OpenAPI schema."""

from datetime import UTC, datetime
from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.commands.models import Command, CommandState
from apps.commands.representation import command_json
from apps.commands.services import MAX_NAME_LENGTH, MAX_TIMEOUT_SECONDS
from apps.devices.models import Device, DeviceEvent, PresenceEvent


class UtcDateTimeField(serializers.DateTimeField):
    """ISO 8601 in UTC with `+00:00`, whatever TIME_ZONE is: the format of command_json and the WebSocket
    events, so one client parses every time the project sends the same way."""

    def to_representation(self, value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value is not None else None


class ModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: UtcDateTimeField,
    }


class LatestValueSerializer(serializers.Serializer):
    data = serializers.JSONField(help_text="The payload of the newest message of this kind.")
    at = serializers.DateTimeField(help_text="When it was received.")


class DeviceSerializer(ModelSerializer):
    latest = serializers.SerializerMethodField(help_text="The newest message of each kind, by kind.")
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Device
        fields = (
            "username",
            "name",
            "is_online",
            "last_seen_at",
            "last_connected_at",
            "last_disconnected_at",
            "last_disconnect_reason",
            "latest",
            "owner",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=LatestValueSerializer()))
    def get_latest(self, device: Device) -> dict[str, dict[str, Any]]:
        latest = device.latest if isinstance(device.latest, dict) else {}
        return {
            kind: {"data": value.get("data"), "at": value.get("at")}
            for kind, value in latest.items()
            if isinstance(value, dict)
        }


class HistoryEventSerializer(ModelSerializer):
    class Meta:
        model = DeviceEvent
        fields = ("kind", "payload", "received_at")
        read_only_fields = fields


class PresenceEventSerializer(ModelSerializer):
    class Meta:
        model = PresenceEvent
        fields = ("online", "at", "reason", "source")
        read_only_fields = fields


class CommandSerializer(serializers.Serializer):
    """Read-only: renders `command_json(command)`."""

    id = serializers.UUIDField(read_only=True)
    device = serializers.CharField(read_only=True, help_text="The device's username.")
    name = serializers.CharField(read_only=True)
    params = serializers.DictField(read_only=True)
    state = serializers.ChoiceField(choices=CommandState.choices, read_only=True)
    timeout = serializers.IntegerField(read_only=True, help_text="Seconds the device has to answer.")
    deadline = serializers.DateTimeField(read_only=True)
    queued_at = serializers.DateTimeField(read_only=True)
    sent_at = serializers.DateTimeField(read_only=True, allow_null=True)
    delivered_at = serializers.DateTimeField(read_only=True, allow_null=True)
    succeeded_at = serializers.DateTimeField(read_only=True, allow_null=True)
    failed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    expired_at = serializers.DateTimeField(read_only=True, allow_null=True)
    timed_out_at = serializers.DateTimeField(read_only=True, allow_null=True)
    result = serializers.JSONField(read_only=True, allow_null=True, help_text="What the device answered.")
    error = serializers.CharField(read_only=True, allow_blank=True)

    def to_representation(self, instance: Command) -> dict[str, Any]:
        return command_json(instance)


class CommandRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, help_text="The command the device runs.")
    params = serializers.DictField(
        required=False, default=dict, help_text="A JSON object of arguments (default: {})."
    )
    timeout = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TIMEOUT_SECONDS,
        help_text="Seconds the device has to answer (default: the project's COMMAND_DEFAULT_TIMEOUT).",
    )
