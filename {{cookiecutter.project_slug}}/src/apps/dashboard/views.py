"""The fleet and device pages. They render the current state from the database; the page's script then
keeps it current from /ws/connect/ events and resynchronises from the JSON API after a reconnect."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.commands.models import Command
from apps.dashboard.representation import device_json, message_json, presence_json
from apps.dashboard.visibility import visible_devices
from apps.devices.models import Device, DeviceEvent
from apps.mqtt_service import topology

# What the device page shows at first (newer entries arrive live on top; the oldest drop off).
PRESENCE_SHOWN = 50
MESSAGES_SHOWN = 20
COMMANDS_SHOWN = 20
# Stored messages the chart starts from.
CHART_POINTS = 300


def _kinds() -> list[str]:
    return list(topology.DEVICE_MESSAGE_KINDS)


@login_required
@require_GET
def fleet(request: HttpRequest) -> HttpResponse:
    devices = list(visible_devices(request.user).order_by("username"))
    online = sum(1 for device in devices if device.is_online)
    return render(
        request,
        "dashboard/fleet.html",
        {
            "devices": [(device, device_json(device)) for device in devices],
            "kinds": _kinds(),
            "online_count": online,
            "offline_count": len(devices) - online,
        },
    )


@login_required
@require_GET
def device_detail(request: HttpRequest, username: str) -> HttpResponse:
    try:
        device = visible_devices(request.user).get(username=username)
    except Device.DoesNotExist:
        raise Http404("No such device.") from None  # also for a device the user may not see
    history = list(DeviceEvent.objects.filter(device=device).order_by("-received_at")[:CHART_POINTS])
    messages = {kind: [] for kind in _kinds()}
    for event in history:
        shown = messages.setdefault(event.kind, [])
        if len(shown) < MESSAGES_SHOWN:
            shown.append(message_json(event))
    current = device_json(device)
    for kind, entry in current["latest"].items():
        # Kinds kept only as latest values (status) still show their newest message.
        if not messages.get(kind):
            messages[kind] = [{"kind": kind, "payload": entry["data"], "received_at": entry["at"]}]
    return render(
        request,
        "dashboard/device.html",
        {
            "device": device,
            "device_state": current,
            "kinds": _kinds(),
            "messages": messages,
            "chart_points": [message_json(event) for event in reversed(history)],
            "presence": [presence_json(event) for event in device.presence_events.all()[:PRESENCE_SHOWN]],
            "commands": Command.objects.filter(device=device).order_by("-queued_at")[:COMMANDS_SHOWN],
            "default_timeout": settings.COMMAND_DEFAULT_TIMEOUT,
        },
    )
