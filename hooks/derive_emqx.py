"""EMQX configuration derived from the answers, as HOCON values set through environment variables.

EMQX reads `EMQX_<PATH>` variables (`__` separates levels) and parses each value as HOCON; a whole array
goes in one variable so its indexes cannot drift. Strings are written quoted, so EMQX's own placeholders
such as ${username} stay literal for HOCON; compose files escape them further (see derive_compose).
"""

from __future__ import annotations

import json
from typing import Any

from answers import Answers, PasswordHash
from backend_services import POSTGRES_HOST, POSTGRES_PORT

BOOTSTRAP_USERS_FILE = "/opt/emqx/data/bootstrap_users.json"
ACL_PATH = "/opt/emqx/etc/acl.conf"
# The exact query EMQX runs for a device: placeholders are prepared-statement parameters (unquoted);
# salt is stored as '' (never NULL) so prefix/suffix hashing never errors out of the chain.
DEVICE_AUTH_QUERY = (
    "SELECT password_hash, salt, false AS is_superuser FROM devices_device "
    "WHERE username = ${username} AND is_active LIMIT 1"
)
# Session sizes for bursts: a slow handler replica buffers instead of dropping (defaults 1000 / 32). The
# in-flight window matches the Receive Maximum the handler asks for (HandlerService receive_maximum), so the
# broker lets it hold as many unacknowledged messages as it has workers to store them.
MAX_MQUEUE_LEN = 10000
MAX_INFLIGHT = 1000
# $SYS/brokers/<node>/clients/<clientid>/connected|disconnected: the handler's presence source.
CLIENT_EVENT_MESSAGES = {"client_connected": True, "client_disconnected": True}


class Raw(str):
    """A HOCON value written as is (an enum word such as password_based), not as a quoted string."""


class EnvReference(str):
    """A quoted string whose `$` must survive escaping: a ${VAR} that Docker Compose fills from .env."""


def to_hocon(value: Any, dollar: str = "$") -> str:
    """Render dicts, lists, strings, ints and booleans as one-line HOCON.

    `dollar` replaces every literal `$` in strings: "$$" inside a compose file, where a lone `$` starts
    an interpolation; EnvReference strings are left for compose to interpolate.
    """
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, EnvReference):
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True).replace("$", dollar)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {to_hocon(item, dollar)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_hocon(item, dollar) for item in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as HOCON")


def password_hash_algorithm(scheme: PasswordHash) -> dict[str, Any]:
    """EMQX's password_hash_algorithm block for the answered device hashing."""
    if scheme.algorithm == "pbkdf2":
        return {
            "name": Raw("pbkdf2"),
            "mac_fun": Raw(scheme.pbkdf2_mac),
            "iterations": scheme.pbkdf2_iterations,
            "dk_length": scheme.pbkdf2_dk_length,
        }
    if scheme.algorithm == "bcrypt":
        return {"name": Raw("bcrypt")}
    return {"name": Raw(scheme.algorithm), "salt_position": Raw(scheme.salt_position)}


def authentication_chain(answers: Answers, postgres: dict[str, str]) -> list[dict[str, Any]]:
    """Built-in database (root + backend service users from a bootstrap file), then PostgreSQL (devices).

    `postgres` holds the database, username and password values (EnvReference in a compose file).
    """
    return [
        {
            "mechanism": Raw("password_based"),
            "backend": Raw("built_in_database"),
            "user_id_type": Raw("username"),
            # EMQX's default for its own users: the service users' passwords are hashed on import.
            "password_hash_algorithm": {"name": Raw("pbkdf2"), "mac_fun": Raw("sha256"), "iterations": 4096},
            "bootstrap_file": BOOTSTRAP_USERS_FILE,
            "bootstrap_type": Raw("plain"),
        },
        {
            "mechanism": Raw("password_based"),
            "backend": Raw("postgresql"),
            "server": f"{POSTGRES_HOST}:{POSTGRES_PORT}",
            "database": postgres["database"],
            "username": postgres["username"],
            "password": postgres["password"],
            "pool_size": 8,
            "query": DEVICE_AUTH_QUERY,
            "password_hash_algorithm": password_hash_algorithm(answers.password_hash),
        },
    ]


def authorization() -> dict[str, Any]:
    """File authorization only, deny what no rule allows, and disconnect a client that tries."""
    return {
        "no_match": Raw("deny"),
        "deny_action": Raw("disconnect"),
        "cache": {"enable": True},
        "sources": [{"type": Raw("file"), "enable": True, "path": ACL_PATH}],
    }
