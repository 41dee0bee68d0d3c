"""Endpoints of the JSON API: devices, their telemetry history and presence history, commands (listed, sent
through apps.commands.services.send_command, read).

Every query starts from what the caller may see (apps.api.permissions): another user's device, its history
and its commands answer 404.
"""

from functools import cached_property

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.filters import CommandFilter, DeviceFilter, HistoryFilter
from apps.api.pagination import CommandPagination, DevicePagination, HistoryPagination, PresencePagination
from apps.api.permissions import visible_commands, visible_devices
from apps.api.schema import BAD_INPUT, CSRF_FAILED, NOT_FOUND, NOT_QUEUED, UNAUTHENTICATED, answers
from apps.api.serializers import (
    CommandRequestSerializer,
    CommandSerializer,
    DeviceSerializer,
    HistoryEventSerializer,
    PresenceEventSerializer,
)
from apps.commands.models import Command
from apps.commands.services import CommandNotQueuedError, InvalidCommandError, send_command
from apps.devices.models import Device, DeviceEvent, PresenceEvent


class CommandRefused(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "command_refused"


class CommandNotQueued(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The command could not be queued for sending (it is stored as expired); try again later."
    default_code = "command_not_queued"


DEVICE_USERNAME = OpenApiParameter(
    "username", OpenApiTypes.STR, OpenApiParameter.PATH, description="The device's MQTT username."
)


@extend_schema_view(
    list=extend_schema(
        summary="List devices",
        description="Ordered by username; staff see every device. A page past the last answers 404.",
        responses=answers(DeviceSerializer),
    ),
    retrieve=extend_schema(
        summary="One device",
        parameters=[DEVICE_USERNAME],
        responses=answers(DeviceSerializer, bad_input=False),
    ),
)
class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = DeviceSerializer
    pagination_class = DevicePagination
    filterset_class = DeviceFilter
    lookup_field = "username"
    lookup_value_regex = "[^/]+"

    def get_queryset(self) -> QuerySet[Device]:
        return visible_devices(self.request.user).select_related("owner").order_by("username")


class OneDeviceMixin:
    """Views under /api/devices/<username>/: the device is looked up among those the caller may see.

    Their class-level `queryset` (empty) only names the model for the schema generator, which has no URL
    arguments to call get_queryset with."""

    @cached_property
    def device(self) -> Device:
        return get_object_or_404(visible_devices(self.request.user), username=self.kwargs["username"])


@extend_schema_view(
    get=extend_schema(
        summary="Telemetry history of a device",
        description="Newest first, cursor-paged: follow `next` for older messages.",
        parameters=[DEVICE_USERNAME],
        responses=answers(HistoryEventSerializer),
    )
)
class DeviceHistoryView(OneDeviceMixin, generics.ListAPIView):
    queryset = DeviceEvent.objects.none()
    serializer_class = HistoryEventSerializer
    pagination_class = HistoryPagination
    filterset_class = HistoryFilter

    def get_queryset(self) -> QuerySet[DeviceEvent]:
        return DeviceEvent.objects.filter(device=self.device)


@extend_schema_view(
    get=extend_schema(
        summary="Presence history of a device",
        description="Each applied change of its online state, newest first, cursor-paged.",
        parameters=[DEVICE_USERNAME],
        responses=answers(PresenceEventSerializer),
    )
)
class DevicePresenceView(OneDeviceMixin, generics.ListAPIView):
    queryset = PresenceEvent.objects.none()
    serializer_class = PresenceEventSerializer
    pagination_class = PresencePagination

    def get_queryset(self) -> QuerySet[PresenceEvent]:
        return PresenceEvent.objects.filter(device=self.device)


@extend_schema_view(
    get=extend_schema(
        summary="Commands sent to a device",
        description="Newest first, cursor-paged.",
        parameters=[DEVICE_USERNAME],
        responses=answers(CommandSerializer),
    ),
    post=extend_schema(
        summary="Send a command to a device",
        description="Stores the command (state `queued`) and queues it for the broker; follow it with "
        "GET /api/commands/<id>/ or the `command.state` WebSocket events.",
        parameters=[DEVICE_USERNAME],
        request=CommandRequestSerializer,
        responses={
            201: CommandSerializer,
            400: BAD_INPUT,
            401: UNAUTHENTICATED,
            403: CSRF_FAILED,
            404: NOT_FOUND,
            503: NOT_QUEUED,
        },
    ),
)
class DeviceCommandsView(OneDeviceMixin, generics.ListCreateAPIView):
    queryset = Command.objects.none()
    serializer_class = CommandSerializer
    pagination_class = CommandPagination
    filterset_class = CommandFilter

    def get_queryset(self) -> QuerySet[Command]:
        return Command.objects.filter(device=self.device).select_related("device")

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        body = CommandRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            command = send_command(self.device, created_by=request.user, **body.validated_data)
        except InvalidCommandError as exc:
            # The service has the last word (e.g. an inactive device, params the database would refuse).
            raise CommandRefused(str(exc)) from exc
        except CommandNotQueuedError as exc:
            raise CommandNotQueued() from exc
        location = reverse("api:command-detail", args=[command.pk])
        return Response(
            CommandSerializer(command).data, status=status.HTTP_201_CREATED, headers={"Location": location}
        )


@extend_schema_view(
    get=extend_schema(
        summary="One command, with the time it reached each state",
        responses=answers(CommandSerializer, bad_input=False),
    )
)
class CommandDetailView(generics.RetrieveAPIView):
    serializer_class = CommandSerializer

    def get_queryset(self) -> QuerySet[Command]:
        return visible_commands(self.request.user)
