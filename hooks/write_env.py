"""Write .env from .env.example with fresh random secrets; the rest of the tree stays deterministic."""

from __future__ import annotations

import secrets
import string
from pathlib import Path

# Every secret the generated project needs; .env.example leaves them empty.
SECRET_NAMES = (
    "DJANGO_SECRET_KEY",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "MQTT_ROOT_PASSWORD",
    "MQTT_HANDLER_PASSWORD",
    "MQTT_PUBLISHER_PASSWORD",
    "FLOWER_PASSWORD",
    "EMQX_NODE_COOKIE",
)
# Letters and digits only: safe unquoted in .env, shell, URLs, HOCON strings and redis.conf.
_ALPHABET = string.ascii_letters + string.digits
_LENGTHS = {"DJANGO_SECRET_KEY": 64}
_DEFAULT_LENGTH = 40


def new_secret(length: int = _DEFAULT_LENGTH) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def render_env(example: str, needed: tuple[str, ...]) -> str:
    """The .env text: each `NAME=` line of a needed secret gets a fresh value; others are copied."""
    lines = []
    filled = set()
    for line in example.splitlines():
        name, sep, _value = line.partition("=")
        if sep and name.strip() in needed and not name.lstrip().startswith("#"):
            name = name.strip()
            line = f"{name}={new_secret(_LENGTHS.get(name, _DEFAULT_LENGTH))}"
            filled.add(name)
        lines.append(line)
    missing = [name for name in needed if name not in filled]
    if missing:
        lines.append("")
        lines.append("# Secrets the generator added because .env.example does not list them.")
        lines.extend(f"{name}={new_secret(_LENGTHS.get(name, _DEFAULT_LENGTH))}" for name in missing)
    return "\n".join(lines) + "\n"


def write_env(project: Path, use_flower: bool) -> None:
    needed = tuple(name for name in SECRET_NAMES if use_flower or not name.startswith("FLOWER_"))
    example = (project / ".env.example").read_text(encoding="utf-8")
    env_path = project / ".env"
    env_path.write_text(render_env(example, needed), encoding="utf-8")
    env_path.chmod(0o600)
