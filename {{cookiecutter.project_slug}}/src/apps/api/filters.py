"""Query parameters of the list endpoints. Every value is checked: a bad one is answered 400 with the
parameter's name and the reason (django-filter's form validation), never ignored silently."""

from django import forms
from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from apps.commands.models import Command, CommandState
from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service import topology

BOOLEAN_CHOICES = (("true", "true"), ("false", "false"))


class DeviceFilter(filters.FilterSet):
    search = filters.CharFilter(
        method="filter_search", max_length=200, help_text="Part of the device's name or username."
    )
    # Strict true/false: an unknown value is refused instead of silently listing every device.
    online = filters.ChoiceFilter(
        choices=BOOLEAN_CHOICES,
        method="filter_online",
        help_text="Only devices that are online (true) or offline (false).",
    )

    class Meta:
        model = Device
        fields = ("search", "online")

    def filter_search(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        return queryset.filter(Q(name__icontains=value) | Q(username__icontains=value))

    def filter_online(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet[Device]:
        return queryset.filter(is_online=value == "true")


class TimeRangeForm(forms.Form):
    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be later than `since`.")
        return cleaned


class HistoryFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(
        choices=[(kind, kind) for kind in topology.DEVICE_MESSAGE_KINDS],
        help_text="Only messages of this kind.",
    )
    since = filters.IsoDateTimeFilter(
        field_name="received_at",
        lookup_expr="gte",
        help_text="ISO 8601 date-time: messages received at or after it (without an offset: in the "
        "project's time zone).",
    )
    until = filters.IsoDateTimeFilter(
        field_name="received_at",
        lookup_expr="lt",
        help_text="ISO 8601 date-time: messages received before it.",
    )

    class Meta:
        model = DeviceEvent
        fields = ("kind", "since", "until")
        form = TimeRangeForm


class CommandFilter(filters.FilterSet):
    state = filters.ChoiceFilter(choices=CommandState.choices, help_text="Only commands in this state.")

    class Meta:
        model = Command
        fields = ("state",)
