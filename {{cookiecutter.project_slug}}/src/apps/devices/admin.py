from django.contrib import admin
from django.http import HttpRequest

from apps.devices.forms import DeviceAdminForm
from apps.devices.models import Device, DeviceEvent


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    form = DeviceAdminForm
    list_display = ("username", "name", "owner", "is_active", "last_seen_at", "created_at")
    list_filter = ("is_active", "owner", "created_at", "last_seen_at")
    search_fields = ("username", "name", "owner__username", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = ("password_hash", "salt", "last_status", "last_seen_at", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("username", "name", "owner", "is_active")}),
        ("Password", {"fields": ("password1", "password2", "password_hash", "salt")}),
        ("State", {"fields": ("last_status", "last_seen_at", "created_at", "updated_at")}),
    )


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
