"""Device usernames that cannot widen the broker's fence.

The EMQX ACL substitutes the username into topic rules (`<prefix>/${username}/...`). A username holding
a character MQTT gives meaning to (`/` level separator, `+` and `#` wildcards, `$` system prefix) or
whitespace/NUL could match other devices' topics, so only lower-case letters, digits, `_` and `-` pass.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.mqtt_service import topology

MAX_USERNAME_LENGTH = 64
USERNAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
# The same rule anchored for the database constraint (PostgreSQL `~`, where `$` is the end of the string).
USERNAME_DB_REGEX = rf"^{USERNAME_PATTERN}$"
_USERNAME_RE = re.compile(USERNAME_PATTERN)
_MQTT_SPECIAL = {"/": "'/'", "+": "'+'", "#": "'#'", "$": "'$'", "\x00": "NUL"}

# The backend's own broker identities by their default names: a device must never be able to log in as one of
# them. The database constraint refuses these; the validator also refuses the names this project answered.
RESERVED_USERNAMES = frozenset({"svc_handler", "svc_publisher", "admin"})


def reserved_usernames() -> frozenset[str]:
    """The fixed reserved names plus the broker users this deployment actually has."""
    configured = {
        getattr(settings, "MQTT_ROOT_USERNAME", ""),
        topology.HANDLER_USERNAME,
        topology.PUBLISHER_USERNAME,
    }
    return RESERVED_USERNAMES | {name.lower() for name in configured if name}


def validate_device_username(value: str) -> None:
    """Raise ValidationError with a message that says exactly what is wrong with the username."""
    if not isinstance(value, str) or not value:
        raise ValidationError("A device username is required.", code="required")
    if len(value) > MAX_USERNAME_LENGTH:
        raise ValidationError(
            "A device username has at most %(max)d characters (this one has %(length)d).",
            code="max_length",
            params={"max": MAX_USERNAME_LENGTH, "length": len(value)},
        )
    for char, label in _MQTT_SPECIAL.items():
        if char in value:
            raise ValidationError(
                "A device username cannot contain %(char)s: MQTT gives it a special meaning in topics.",
                code="mqtt_special",
                params={"char": label},
            )
    if any(char.isspace() for char in value):
        raise ValidationError("A device username cannot contain whitespace.", code="whitespace")
    if value != value.lower():
        raise ValidationError("A device username must be lower case.", code="case")
    if _USERNAME_RE.fullmatch(value) is None:
        raise ValidationError(
            "A device username starts with a lower-case letter or digit and contains only lower-case "
            "letters, digits, '_' and '-'.",
            code="invalid",
        )
    if value in reserved_usernames():
        raise ValidationError(
            "%(value)s is reserved for the backend's own broker users.",
            code="reserved",
            params={"value": value},
        )
