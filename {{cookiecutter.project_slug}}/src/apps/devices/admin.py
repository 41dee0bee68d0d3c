import json
from collections.abc import Iterable, Sequence

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.commands.models import Command
from apps.devices.forms import DeviceAdminForm
from apps.devices.models import Device, DeviceEvent

# Characters of one kind's latest payload shown in the device list.
LATEST_PREVIEW_LENGTH = 60
# Rows of presence history and of commands shown on a device's page (newest first).
RECENT_ROWS = 20


def _when(value: object) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _link(command: Command) -> SafeString:
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:commands_command_change", args=[command.pk]), command.name
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], empty: str) -> SafeString:
    """A small read-only table (escaped): history shown on the change page without a formset to submit."""
    rows = list(rows)
    if not rows:
        return format_html("{}", empty)
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((c,) for c in row)),) for row in rows)
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    form = DeviceAdminForm
    list_display = ("username", "name", "owner", "online_badge", "last_seen_at", "latest_values", "is_active")
    list_filter = ("is_online", "is_active", "owner", "last_seen_at", "created_at")
    search_fields = ("username", "name", "owner__username", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = (
        "password_hash",
        "salt",
        "online_badge",
        "last_seen_at",
        "last_connected_at",
        "last_disconnected_at",
        "last_disconnect_reason",
        "connection_id",
        "latest",
        "last_status",
        "created_at",
        "updated_at",
        "recent_presence",
        "recent_commands",
    )
    fieldsets = (
        (None, {"fields": ("username", "name", "owner", "is_active")}),
        ("Password", {"fields": ("password1", "password2", "password_hash", "salt")}),
        (
            "Presence",
            {
                "fields": (
                    "online_badge",
                    "last_seen_at",
                    "last_connected_at",
                    "last_disconnected_at",
                    "last_disconnect_reason",
                    "connection_id",
                    "inactivity_timeout",
                )
            },
        ),
        ("State", {"fields": ("latest", "last_status", "created_at", "updated_at")}),
        (f"Presence history (newest {RECENT_ROWS})", {"fields": ("recent_presence",)}),
        (f"Commands (newest {RECENT_ROWS})", {"fields": ("recent_commands",)}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Device | None = None) -> Sequence:
        # A device being added has no state or history yet.
        return self.fieldsets[:2] if obj is None else self.fieldsets

    @admin.display(description="presence", ordering="is_online")
    def online_badge(self, device: Device) -> str:
        # Words, not only a colour: readable without colour vision and in a screen reader.
        if device.is_online:
            return format_html('<strong style="color: #1a7f37">&#9679; {}</strong>', "online")
        return format_html('<span style="color: #6e7781">&#9675; {}</span>', "offline")

    @admin.display(description="latest values")
    def latest_values(self, device: Device) -> str:
        latest = device.latest if isinstance(device.latest, dict) else {}
        parts = []
        for kind in sorted(latest):
            value = latest[kind]
            data = value.get("data") if isinstance(value, dict) else value
            text = json.dumps(data, ensure_ascii=False, sort_keys=True)
            if len(text) > LATEST_PREVIEW_LENGTH:
                text = text[: LATEST_PREVIEW_LENGTH - 1] + "\u2026"
            parts.append(f"{kind}: {text}")
        return "; ".join(parts) or "-"

    @admin.display(description="presence history")
    def recent_presence(self, device: Device) -> SafeString:
        events = device.presence_events.order_by("-at")[:RECENT_ROWS]
        rows = (
            (
                _when(e.at),
                "online" if e.online else "offline",
                e.reason or "-",
                e.source,
                _when(e.recorded_at),
            )
            for e in events
        )
        headers = ("at", "state", "reason", "source", "recorded")
        return _table(headers, rows, "No presence change recorded yet.")

    @admin.display(description="commands")
    def recent_commands(self, device: Device) -> SafeString:
        commands = device.commands.order_by("-queued_at")[:RECENT_ROWS]
        rows = (
            (
                _link(c),
                c.state,
                _when(c.queued_at),
                _when(c.deadline),
                c.error or "-",
            )
            for c in commands
        )
        return _table(("name", "state", "queued", "deadline", "error"), rows, "No command sent yet.")


@admin.register(DeviceEvent)
class DeviceEventAdmin(admin.ModelAdmin):
    """History written by the MQTT handler: viewable, never edited by hand."""

    list_display = ("received_at", "device", "kind")
    list_filter = ("kind", "received_at")
    search_fields = ("device__username", "kind")
    list_select_related = ("device",)
    date_hierarchy = "received_at"
    readonly_fields = ("device", "kind", "payload", "received_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DeviceEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DeviceEvent | None = None) -> bool:
        return False
