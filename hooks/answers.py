"""The template's answers as ONE normalized, validated model.

Every generated config (compose files, EMQX auth, acl.conf, the Django topic and password modules) is
derived from an `Answers` instance, so a topic prefix or a replica count is answered once and can never
disagree between two files.
"""

from __future__ import annotations

import keyword
import re
import sys
import unicodedata
import zoneinfo
from dataclasses import dataclass
from typing import Any

# The EMQX superuser's default name (MQTT_ROOT_USERNAME in .env; no ACL rule names it).
ROOT_USERNAME = "admin"

# Topic kinds of the device protocol itself: a device announces its presence (and its Last Will) on
# <device prefix>/<username>/presence and answers commands on <device prefix>/<username>/reply.
PRESENCE_KIND = "presence"
REPLY_KIND = "reply"
RESERVED_KINDS = (PRESENCE_KIND, REPLY_KIND)

HASH_ALGORITHMS = ("sha256", "pbkdf2", "bcrypt")
# Fixed cost parameters: written into both Django (password_scheme.py) and EMQX from here.
PBKDF2_MAC = "sha256"
PBKDF2_ITERATIONS = 10000
PBKDF2_DK_LENGTH = 32
BCRYPT_ROUNDS = 10
SHA256_SALT_POSITION = "suffix"

QOS_RANGE = range(0, 3)
REPLICA_RANGE = range(1, 33)
# One broker, or a cluster with an odd number of nodes, so that one side of a network split always has a
# majority and the cluster heals on its own.
EMQX_NODE_COUNTS = (1, 3, 5)
MAX_TOPIC_LEVEL_LENGTH = 64

# Top-level import names of the generated project and its dependencies: a slug equal to one would shadow it.
_PROJECT_IMPORT_NAMES = frozenset(
    {
        "apps",
        "config",
        "websocket",
        "tests",
        "src",
        "django",
        "channels",
        "channels_redis",
        "daphne",
        "aiomqtt",
        "celery",
        "django_celery_beat",
        "redis",
        "psycopg",
        "environ",
        "gunicorn",
        "uvicorn",
        "flower",
        "bcrypt",
        "whitenoise",
        "prometheus_client",
        "pytest",
        "paho",
        "kombu",
    }
)
_SLUG_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOPIC_LEVEL_FORBIDDEN = re.compile(r"[/+#\s\x00-\x1f\x7f]")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_PROJECT_VERSION_RE = re.compile(r"^\d+(\.\d+){0,3}((a|b|rc|\.post|\.dev)\d+)?$")
_LANGUAGE_CODE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_PYTHON_VERSION_RE = re.compile(r"^3\.(\d+)(\.\d+)?$")
_IMAGE_MAJOR_RE = re.compile(r"^(\d+)(\.\d+){0,2}$")
_EMQX_VERSION_RE = re.compile(r"^5\.8\.\d+$")
# Broker users of the backend services: the ACL names them literally, EMQX's bootstrap file creates them.
_SERVICE_USERNAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# Characters no generated file can hold safely as plain text: controls (newline, NUL, ESC...), format
# characters (bidirectional overrides that make code read differently than it runs), surrogates, separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_TEXT_LIMITS = {"project_name": 100, "description": 500, "author_name": 200, "author_email": 254}


class AnswerError(ValueError):
    """A rejected answer; str() is one readable line naming the answer and what is allowed."""

    def __init__(self, answer: str, value: object, allowed: str) -> None:
        super().__init__(f"Invalid answer {answer}={value!r}: {allowed}")
        self.answer = answer


@dataclass(frozen=True)
class PasswordHash:
    """How device passwords are hashed, shared by Django and EMQX's PostgreSQL authenticator."""

    algorithm: str
    salt_position: str = SHA256_SALT_POSITION
    pbkdf2_mac: str = PBKDF2_MAC
    pbkdf2_iterations: int = PBKDF2_ITERATIONS
    pbkdf2_dk_length: int = PBKDF2_DK_LENGTH
    bcrypt_rounds: int = BCRYPT_ROUNDS


@dataclass(frozen=True)
class Images:
    python: str
    postgres: str
    redis: str
    emqx: str


@dataclass(frozen=True)
class Answers:
    project_name: str
    project_slug: str
    description: str
    author_name: str
    author_email: str
    version: str
    timezone: str
    language_code: str
    device_topic_prefix: str
    command_topic_prefix: str
    device_message_kinds: tuple[str, ...]
    shared_subscription_group: str
    ingest_qos: int
    command_qos: int
    mqtt_handler_replicas: int
    mqtt_publisher_replicas: int
    password_hash: PasswordHash
    use_flower: bool
    expose_infra_ports: bool
    images: Images
    emqx_nodes: int
    handler_username: str
    publisher_username: str
    root_username: str = ROOT_USERNAME

    @property
    def docker_name(self) -> str:
        """The slug as Docker names are usually written (`iot-backend`): prefix of the compose projects,
        containers and network, so two generated projects never share one on a Docker host."""
        return self.project_slug.replace("_", "-")

    @property
    def kubernetes_name(self) -> str:
        """The prefix of the Kubernetes objects' names: the Docker name, cut so that the longest name built on
        it (a StatefulSet's, whose pods' revision label must stay within 63 characters) is valid."""
        return self.docker_name[:30].strip("-")

    @property
    def infra_project(self) -> str:
        return f"{self.docker_name}-infra"

    @property
    def app_project(self) -> str:
        return f"{self.docker_name}-app"

    @property
    def network(self) -> str:
        return f"{self.docker_name}-net"

    def container(self, service: str) -> str:
        return f"{self.docker_name}-{service}"


def _text(context: dict[str, Any], name: str) -> str:
    """The answer without surrounding white space; refused when no file format could hold it as plain text."""
    value = context.get(name)
    if not isinstance(value, str):
        raise AnswerError(name, value, "a text answer is required")
    for char in value:
        if unicodedata.category(char) in _UNSAFE_CATEGORIES:
            what = f"plain text on one line (it holds the control or format character U+{ord(char):04X})"
            raise AnswerError(name, value, what)
    value = value.strip()
    limit = _TEXT_LIMITS.get(name)
    if limit is not None and len(value) > limit:
        raise AnswerError(name, value, f"at most {limit} characters")
    return value


def _nonempty(context: dict[str, Any], name: str) -> str:
    value = _text(context, name)
    if not value:
        raise AnswerError(name, value, "must not be empty")
    return value


def _integer(context: dict[str, Any], name: str, what: str) -> int:
    """An integer answer: a JSON number or its digits typed at the prompt (never a boolean)."""
    raw = context.get(name)
    if isinstance(raw, bool):
        raise AnswerError(name, raw, what)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
        return int(raw)
    raise AnswerError(name, raw, what)


def _bounded_int(context: dict[str, Any], name: str, allowed: range) -> int:
    what = f"an integer from {allowed.start} to {allowed.stop - 1}"
    value = _integer(context, name, what)
    if value not in allowed:
        raise AnswerError(name, context.get(name), what)
    return value


def _emqx_nodes(context: dict[str, Any]) -> int:
    what = "1 (a single broker), or 3 or 5 for a cluster (an odd number of nodes lets a network split heal)"
    value = _integer(context, "emqx_nodes", what)
    if value not in EMQX_NODE_COUNTS:
        raise AnswerError("emqx_nodes", context.get("emqx_nodes"), what)
    return value


def _boolean(context: dict[str, Any], name: str) -> bool:
    raw = context.get(name)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "yes", "y", "1", "on"}:
        return True
    if isinstance(raw, str) and raw.strip().lower() in {"false", "no", "n", "0", "off"}:
        return False
    raise AnswerError(name, raw, "true or false")


def _topic_level(name: str, value: str) -> str:
    """One MQTT topic level that is safe to put in a topic filter and in an ACL rule."""
    allowed = (
        f"one MQTT topic level: 1-{MAX_TOPIC_LEVEL_LENGTH} characters, no '/', '+', '#', "
        "whitespace or control characters, not starting with '$'"
    )
    if not value or len(value) > MAX_TOPIC_LEVEL_LENGTH:
        raise AnswerError(name, value, allowed)
    if _TOPIC_LEVEL_FORBIDDEN.search(value) or value.startswith("$"):
        raise AnswerError(name, value, allowed)
    return value


def _slug(context: dict[str, Any]) -> str:
    value = _text(context, "project_slug")
    if value != context["project_slug"]:
        # cookiecutter names the project folder after the raw answer, before any hook can trim it.
        raise AnswerError("project_slug", context["project_slug"], "no spaces around the name")
    if not _SLUG_RE.fullmatch(value):
        raise AnswerError(
            "project_slug",
            value,
            "a Python package name: a lower-case letter, then lower-case letters, digits, _",
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        raise AnswerError("project_slug", value, "must not be a Python keyword")
    # stdlib_module_names exists from Python 3.10; older interpreters check the project's own names only.
    if value in getattr(sys, "stdlib_module_names", frozenset()) or value in _PROJECT_IMPORT_NAMES:
        raise AnswerError("project_slug", value, "must not shadow a standard-library or dependency module")
    return value


def _kinds(context: dict[str, Any]) -> tuple[str, ...]:
    raw = _text(context, "device_message_kinds")
    kinds = tuple(part.strip() for part in raw.split(","))
    for kind in kinds:
        _topic_level("device_message_kinds", kind)
        if kind in RESERVED_KINDS:
            what = f"{kind!r} is reserved for the device protocol ({', '.join(RESERVED_KINDS)})"
            raise AnswerError("device_message_kinds", raw, what)
    duplicates = sorted({kind for kind in kinds if kinds.count(kind) > 1})
    if duplicates:
        raise AnswerError("device_message_kinds", raw, f"each kind once (repeated: {', '.join(duplicates)})")
    return kinds


def _timezone(context: dict[str, Any]) -> str:
    value = _text(context, "timezone")
    try:
        known = value in zoneinfo.available_timezones() or bool(zoneinfo.ZoneInfo(value))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        known = False
    if not known:
        raise AnswerError("timezone", value, "an IANA time zone name such as UTC or Asia/Tashkent")
    return value


def _email(context: dict[str, Any]) -> str:
    value = _text(context, "author_email")
    if not _EMAIL_RE.fullmatch(value):
        raise AnswerError("author_email", value, "an email address (name@domain)")
    return value


def _matching(context: dict[str, Any], name: str, pattern: re.Pattern[str], allowed: str) -> str:
    value = _text(context, name)
    if not pattern.fullmatch(value):
        raise AnswerError(name, value, allowed)
    return value


def _images(context: dict[str, Any]) -> Images:
    python = _matching(
        context, "python_version", _PYTHON_VERSION_RE, "a Python 3 version, 3.11 or newer (e.g. 3.12)"
    )
    if int(_PYTHON_VERSION_RE.fullmatch(python).group(1)) < 11:
        raise AnswerError("python_version", python, "a Python 3 version, 3.11 or newer (e.g. 3.12)")
    postgres = _matching(
        context, "postgres_version", _IMAGE_MAJOR_RE, "a PostgreSQL version such as 16 or 16.4"
    )
    if int(postgres.split(".")[0]) < 13:
        raise AnswerError("postgres_version", postgres, "a PostgreSQL version 13 or newer (e.g. 16)")
    redis = _matching(context, "redis_version", _IMAGE_MAJOR_RE, "a Redis version such as 7 or 7.4")
    if int(redis.split(".")[0]) < 6:
        raise AnswerError("redis_version", redis, "a Redis version 6 or newer (e.g. 7)")
    emqx = _matching(context, "emqx_version", _EMQX_VERSION_RE, "an EMQX 5.8.x patch release (e.g. 5.8.9)")
    return Images(python=python, postgres=postgres, redis=redis, emqx=emqx)


def _service_usernames(context: dict[str, Any]) -> tuple[str, str]:
    allowed = "a broker username: a lower-case letter, then up to 63 lower-case letters, digits, '_' or '-'"
    names = []
    for answer in ("mqtt_handler_username", "mqtt_publisher_username"):
        value = _text(context, answer)
        if not _SERVICE_USERNAME_RE.fullmatch(value):
            raise AnswerError(answer, value, allowed)
        if value == ROOT_USERNAME:
            what = f"must differ from the EMQX superuser's default name {ROOT_USERNAME!r}"
            raise AnswerError(answer, value, what)
        names.append(value)
    if names[0] == names[1]:
        raise AnswerError("mqtt_publisher_username", names[1], "must differ from mqtt_handler_username")
    return names[0], names[1]


def _password_hash(context: dict[str, Any]) -> PasswordHash:
    value = _text(context, "device_password_hash")
    if value not in HASH_ALGORITHMS:
        raise AnswerError("device_password_hash", value, f"one of {', '.join(HASH_ALGORITHMS)}")
    return PasswordHash(algorithm=value)


def build_answers(context: dict[str, Any]) -> Answers:
    """Validate the cookiecutter context and return the model; raises AnswerError on the first bad answer."""
    device_prefix = _topic_level("device_topic_prefix", _text(context, "device_topic_prefix"))
    command_prefix = _topic_level("command_topic_prefix", _text(context, "command_topic_prefix"))
    if device_prefix == command_prefix:
        raise AnswerError("command_topic_prefix", command_prefix, "must differ from device_topic_prefix")
    handler_username, publisher_username = _service_usernames(context)
    return Answers(
        project_name=_nonempty(context, "project_name"),
        project_slug=_slug(context),
        description=_text(context, "description"),
        author_name=_text(context, "author_name"),
        author_email=_email(context),
        version=_matching(context, "version", _PROJECT_VERSION_RE, "a PEP 440 version such as 0.1.0"),
        timezone=_timezone(context),
        language_code=_matching(
            context, "language_code", _LANGUAGE_CODE_RE, "a lower-case language code such as en-us or uz"
        ),
        device_topic_prefix=device_prefix,
        command_topic_prefix=command_prefix,
        device_message_kinds=_kinds(context),
        shared_subscription_group=_topic_level(
            "shared_subscription_group", _text(context, "shared_subscription_group")
        ),
        ingest_qos=_bounded_int(context, "ingest_qos", QOS_RANGE),
        command_qos=_bounded_int(context, "command_qos", QOS_RANGE),
        mqtt_handler_replicas=_bounded_int(context, "mqtt_handler_replicas", REPLICA_RANGE),
        mqtt_publisher_replicas=_bounded_int(context, "mqtt_publisher_replicas", REPLICA_RANGE),
        password_hash=_password_hash(context),
        use_flower=_boolean(context, "use_flower"),
        expose_infra_ports=_boolean(context, "expose_infra_ports"),
        images=_images(context),
        handler_username=handler_username,
        publisher_username=publisher_username,
        emqx_nodes=_emqx_nodes(context),
    )
