"""A device's reply to a command: `{"id": "<command id>", "status": "received" | "ok" | "error",
"result": <any JSON, optional>}` on `<device prefix>/<username>/reply`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from apps.commands.models import CommandState
from apps.mqtt_service.payloads import PayloadRefusedError

REPLY_STATES = {
    "received": CommandState.DELIVERED,
    "ok": CommandState.SUCCEEDED,
    "error": CommandState.FAILED,
}
# The reason a malformed reply is counted under (the handler service's `failed` counter).
BAD_REPLY = "bad_reply"
MAX_ERROR_LENGTH = 1000


@dataclass(frozen=True)
class Reply:
    command_id: uuid.UUID
    state: str
    result: Any
    error: str


def _error_text(result: Any) -> str:
    """What a failed command's `error` says: the result's `message`, or the result itself when it is text."""
    if isinstance(result, dict) and isinstance(result.get("message"), str):
        result = result["message"]
    return result[:MAX_ERROR_LENGTH] if isinstance(result, str) else ""


def parse_reply(payload: dict[str, Any]) -> Reply:
    """The reply in `payload` (a checked JSON object), else PayloadRefusedError(BAD_REPLY) saying why."""
    command_id = payload.get("id")
    if not isinstance(command_id, str):
        raise PayloadRefusedError(BAD_REPLY, 'no "id" string')
    try:
        parsed_id = uuid.UUID(command_id)
    except ValueError:
        raise PayloadRefusedError(BAD_REPLY, f"id {command_id[:64]!r} is not a command id") from None
    status = payload.get("status")
    state = REPLY_STATES.get(status) if isinstance(status, str) else None
    if state is None:
        expected = ", ".join(REPLY_STATES)
        raise PayloadRefusedError(BAD_REPLY, f"status {str(status)[:32]!r} is not one of {expected}")
    result = payload.get("result")
    error = _error_text(result) if state == CommandState.FAILED else ""
    return Reply(parsed_id, state, result, error)
