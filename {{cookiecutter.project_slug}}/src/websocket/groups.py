"""Channel-layer group names: who receives what.

Each user has a private group; staff also join STAFF_GROUP, which receives every device's events.
"""

import hashlib
import re

STAFF_GROUP = "staff"
# Channels accepts ASCII letters, digits, '-', '_' and '.', fewer than 100 characters.
MAX_GROUP_NAME_LENGTH = 99
_INVALID = re.compile(r"[^A-Za-z0-9._-]")
_DIGEST_LENGTH = 12


def safe_group_name(name: str) -> str:
    """A valid group name for any string. Valid names are kept as they are; others are cleaned and get a
    short digest of the original, so two different names never end up in the same group."""
    if name and len(name) <= MAX_GROUP_NAME_LENGTH and not _INVALID.search(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_DIGEST_LENGTH]
    cleaned = _INVALID.sub("_", name)[: MAX_GROUP_NAME_LENGTH - _DIGEST_LENGTH - 1]
    return f"{cleaned}-{digest}"


def user_group(user_id: int | str) -> str:
    """The private group of one user: "user.<id>"."""
    return f"user.{int(user_id)}"
