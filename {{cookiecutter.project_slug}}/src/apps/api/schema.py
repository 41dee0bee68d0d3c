"""The error answers of the API, for the OpenAPI schema: the generator cannot infer them from the views."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why the request was refused.")


# DRF's answer to bad input: each parameter (or body field) with its reasons.
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "example": {"since": ["Enter a valid date/time."]},
}

BAD_INPUT = OpenApiResponse(FIELD_ERRORS, description="A bad parameter or body field, with the reasons.")
UNAUTHENTICATED = OpenApiResponse(
    ErrorSerializer, description="No credentials, or a token that is not valid."
)
NOT_FOUND = OpenApiResponse(
    ErrorSerializer, description="No such device (or command), or not one the caller may see."
)
NOT_QUEUED = OpenApiResponse(
    ErrorSerializer, description="The command is stored (as expired) but could not be queued: Redis is down."
)
CSRF_FAILED = OpenApiResponse(
    ErrorSerializer, description="A session request without the CSRF token (`X-CSRFToken` header)."
)


def answers(ok: object, *, bad_input: bool = True, not_found: bool = True) -> dict[int, object]:
    """The responses of an endpoint: `ok` for 200 plus the errors it can answer."""
    responses: dict[int, object] = {200: ok}
    if bad_input:
        responses[400] = BAD_INPUT
    responses[401] = UNAUTHENTICATED
    if not_found:
        responses[404] = NOT_FOUND
    return responses
