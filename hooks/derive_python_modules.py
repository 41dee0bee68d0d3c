"""Python modules of the generated project that carry answers: the topic topology and the password scheme.

Both are plain constants so Django code, tests and the EMQX config read the same values.
"""

from __future__ import annotations

import json

from answers import Answers

HEADER = (
    "# Generated from the template answers. "
    "Change the answers and regenerate (cruft update) rather than edit.\n"
)


def _py_str(value: str) -> str:
    """A double-quoted, ASCII-only Python string literal (JSON string syntax is a subset of Python's)."""
    return json.dumps(value, ensure_ascii=True)


def _py_tuple(values: tuple[str, ...]) -> str:
    items = ", ".join(_py_str(v) for v in values)
    return f"({items},)" if len(values) == 1 else f"({items})"


def topology_source(answers: Answers) -> str:
    """Source of src/apps/mqtt_service/topology.py."""
    lines = [
        f"DEVICE_TOPIC_PREFIX = {_py_str(answers.device_topic_prefix)}",
        f"COMMAND_TOPIC_PREFIX = {_py_str(answers.command_topic_prefix)}",
        f"DEVICE_MESSAGE_KINDS = {_py_tuple(answers.device_message_kinds)}",
        f"SHARED_SUBSCRIPTION_GROUP = {_py_str(answers.shared_subscription_group)}",
        f"INGEST_QOS = {answers.ingest_qos}",
        f"COMMAND_QOS = {answers.command_qos}",
        "# Broker users of the backend services: acl.conf grants them by these names.",
        f"HANDLER_USERNAME = {_py_str(answers.handler_username)}",
        f"PUBLISHER_USERNAME = {_py_str(answers.publisher_username)}",
    ]
    return HEADER + "\n" + "\n".join(lines) + "\n"


def password_scheme_source(answers: Answers) -> str:
    """Source of src/apps/devices/password_scheme.py; every constant is present whatever the algorithm."""
    scheme = answers.password_hash
    lines = [
        f'ALGORITHM = {_py_str(scheme.algorithm)}  # "sha256" | "pbkdf2" | "bcrypt"',
        f"SALT_POSITION = {_py_str(scheme.salt_position)}  # sha256 only: EMQX hashes password + salt",
        f"PBKDF2_MAC = {_py_str(scheme.pbkdf2_mac)}",
        f"PBKDF2_ITERATIONS = {scheme.pbkdf2_iterations}",
        f"PBKDF2_DK_LENGTH = {scheme.pbkdf2_dk_length}",
        f"BCRYPT_ROUNDS = {scheme.bcrypt_rounds}",
    ]
    return HEADER + "\n" + "\n".join(lines) + "\n"
