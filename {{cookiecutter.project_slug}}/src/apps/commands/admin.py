from django.contrib import admin
from django.http import HttpRequest

from apps.commands.models import STATE_TIMESTAMPS, Command


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    """Commands are sent with apps.commands.services.send_command (or the API), which also publishes them;
    here they are read: the state and the time each state was reached. Deleting old rows is allowed."""

    list_display = ("queued_at", "device", "name", "state", "deadline", "short_id")
    list_filter = ("state", ("device", admin.RelatedOnlyFieldListFilter), "queued_at")
    search_fields = ("=id", "device__username", "name")
    list_select_related = ("device",)
    date_hierarchy = "queued_at"
    fieldsets = (
        (None, {"fields": ("id", "device", "name", "params", "created_by")}),
        ("State", {"fields": ("state", "timeout", "deadline", "result", "error")}),
        ("State history", {"fields": STATE_TIMESTAMPS}),
    )
    readonly_fields = tuple(field for _title, options in fieldsets for field in options["fields"])

    @admin.display(description="id")
    def short_id(self, command: Command) -> str:
        return str(command.id)[:8]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Command | None = None) -> bool:
        return False
