"""Python modules of the generated project that carry answers: the topic topology and the password scheme.

Both are plain constants so Django code, tests and the EMQX config read the same values.
"""

from __future__ import annotations

from answers import PRESENCE_KIND, REPLY_KIND, Answers
from formats import python_string

# The generated project's line length (pyproject.toml, [tool.ruff]).
MAX_LINE = 110

HEADER = (
    "# Generated from the template answers. "
    "Change the answers and regenerate (cruft update) rather than edit.\n"
)


def _py_tuple(values: tuple[str, ...]) -> str:
    items = ", ".join(python_string(v) for v in values)
    return f"({items},)" if len(values) == 1 else f"({items})"


def _assignment(name: str, values: tuple[str, ...]) -> str:
    """`NAME = (...)` on one line, or one item per line when that would pass the line length (as ruff
    formats it)."""
    line = f"{name} = {_py_tuple(values)}"
    if len(line) <= MAX_LINE:
        return line
    return f"{name} = (\n" + "".join(f"    {python_string(v)},\n" for v in values) + ")"


def topology_source(answers: Answers) -> str:
    """Source of src/apps/mqtt_service/topology.py."""
    lines = [
        f"DEVICE_TOPIC_PREFIX = {python_string(answers.device_topic_prefix)}",
        f"COMMAND_TOPIC_PREFIX = {python_string(answers.command_topic_prefix)}",
        _assignment("DEVICE_MESSAGE_KINDS", answers.device_message_kinds),
        f"SHARED_SUBSCRIPTION_GROUP = {python_string(answers.shared_subscription_group)}",
        "# Kinds of the device protocol itself (not answers): presence announcements and command replies.",
        f"PRESENCE_KIND = {python_string(PRESENCE_KIND)}",
        f"REPLY_KIND = {python_string(REPLY_KIND)}",
        "# Every kind the handler service subscribes to and routes: the answered ones and the protocol's.",
        "SERVICE_KINDS = (*DEVICE_MESSAGE_KINDS, PRESENCE_KIND, REPLY_KIND)",
        f"INGEST_QOS = {answers.ingest_qos}",
        f"COMMAND_QOS = {answers.command_qos}",
        "# Broker users of the backend services: acl.conf grants them by these names.",
        f"HANDLER_USERNAME = {python_string(answers.handler_username)}",
        f"PUBLISHER_USERNAME = {python_string(answers.publisher_username)}",
    ]
    return HEADER + "\n" + "\n".join(lines) + "\n"


def password_scheme_source(answers: Answers) -> str:
    """Source of src/apps/devices/password_scheme.py; every constant is present whatever the algorithm."""
    scheme = answers.password_hash
    lines = [
        f'ALGORITHM = {python_string(scheme.algorithm)}  # "sha256" | "pbkdf2" | "bcrypt"',
        f"SALT_POSITION = {python_string(scheme.salt_position)}  # sha256 only: EMQX hashes password + salt",
        f"PBKDF2_MAC = {python_string(scheme.pbkdf2_mac)}",
        f"PBKDF2_ITERATIONS = {scheme.pbkdf2_iterations}",
        f"PBKDF2_DK_LENGTH = {scheme.pbkdf2_dk_length}",
        f"BCRYPT_ROUNDS = {scheme.bcrypt_rounds}",
    ]
    return HEADER + "\n" + "\n".join(lines) + "\n"
