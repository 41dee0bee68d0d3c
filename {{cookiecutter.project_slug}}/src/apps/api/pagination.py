"""Paging: numbered pages for the device list (it has a count), cursors for the time series (newest first,
constant cost however deep, served by the (device, ..., -time) indexes)."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.views import APIView


class DevicePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class NewestFirstPagination(CursorPagination):
    """A cursor that is not one this API handed out is refused with 400 and a reason, not a database error:
    its position must be a value of the ordering field."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    invalid_cursor_message = "Invalid cursor: use the `next` or `previous` link of a previous page."

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        self.ordering_field = queryset.model._meta.get_field(self.ordering.lstrip("-"))
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from exc
        if cursor is not None and cursor.position is not None:
            try:
                self.ordering_field.to_python(cursor.position)
            except DjangoValidationError as exc:
                raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from exc
        return cursor


class HistoryPagination(NewestFirstPagination):
    ordering = "-received_at"


class PresencePagination(NewestFirstPagination):
    ordering = "-at"


class CommandPagination(NewestFirstPagination):
    ordering = "-queued_at"
    page_size = 50
    max_page_size = 500
