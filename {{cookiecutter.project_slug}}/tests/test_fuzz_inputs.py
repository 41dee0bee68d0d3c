"""Property tests (Hypothesis) of everything that takes input from outside: the device payload parser, the
device topic parser, the device username rule and the command topic check.

The payload properties are the contract of apps/mqtt_service/payloads.py: whatever it accepts, PostgreSQL's
jsonb stores, the channel layer's msgpack encodes and a browser's JSON.parse reads; whatever else it is given
is refused with one of its reasons, never with another exception."""

import json
import re

import pytest
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apps.devices.usernames import USERNAME_PATTERN, reserved_usernames, validate_device_username
from apps.mqtt_service.payloads import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    REFUSAL_REASONS,
    PayloadRefusedError,
    find_problem,
    parse_payload,
)
from apps.mqtt_service.topics import TopicScheme, validate_command_topic
from mqtt_helpers import KINDS

EXAMPLES = settings(max_examples=150, deadline=None)
USERNAME_RE = re.compile(USERNAME_PATTERN)

# Text with the characters that break downstreams mixed in: NUL, lone surrogates (both halves), a surrogate
# pair as two code points (json.loads joins its escapes into one character), control characters.
tricky_text = st.text(
    st.one_of(
        st.characters(),
        st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d", "\ude00", "\n", "\x7f", "\u2028", "é"]),
    ),
    max_size=12,
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=INT64_MIN - 2, max_value=INT64_MIN + 2),
    st.integers(min_value=INT64_MAX - 2, max_value=2**64 + 2),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, tricky_text),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(tricky_text, children, max_size=4)
    ),
    max_leaves=20,
)


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def as_raw(value: object) -> bytes:
    """What a device might send for `value`: JSON text (with NaN/Infinity where Python writes them) and
    escapes for characters that are not text (lone surrogates)."""
    return json.dumps(value, allow_nan=True).encode()


def push_message(payload: dict) -> dict:
    """The channel-layer message the handler sends for one device message."""
    event = {"payload": {"type": "device.x", "device": "d", "data": payload, "received_at": "t"}, "id": "i"}
    return {"type": "ws.push_batch", "events": [event]}


def parse_or_reason(raw: bytes) -> dict | str:
    try:
        return parse_payload(raw)
    except PayloadRefusedError as exc:
        assert exc.reason in REFUSAL_REASONS
        return exc.reason


@EXAMPLES
@given(st.dictionaries(tricky_text, json_values, max_size=5))
@example({"n": 10**400})  # overflows to infinity as a float, or is a huge integer
@example({"deep": nested(MAX_DEPTH)})
@example({"deep": nested(MAX_DEPTH + 1)})
@example({"pair": "\ud83d\ude00", "max": INT64_MAX, "min": INT64_MIN, "big": 1e308})
def test_an_accepted_payload_is_one_every_downstream_takes(value: dict) -> None:
    raw = as_raw(value)
    result = parse_or_reason(raw)
    # The cheap pre-checks never skip a problem: refused exactly when the full walk finds one (the reason
    # may differ when a payload has several problems).
    problem = find_problem(json.loads(raw), MAX_DEPTH)
    if isinstance(result, str):
        assert problem is not None
        return
    assert problem is None
    json.dumps(result, allow_nan=False).encode("utf-8")  # a browser's JSON.parse reads it
    get_channel_layer().serialize(push_message(result))  # msgpack, as channels_redis sends it


@EXAMPLES
@given(st.binary(max_size=200))
@example(b"[" * 30_000 + b"]" * 30_000)
@example(b'{"a": ' * 30_000 + b"1" + b"}" * 30_000)
@example(b'{"n": 1e999}')
@example(b'{"n": -1E+999}')
@example(b'{"n": ' + b"9" * 5000 + b"}")
@example(b'{"n": ' + b"9" * 400 + b".5}")
@example(b'{"a\\u0000": 1}')
@example(b'{"s": "\\uDBFF"}')
@example(b'{"n": NaN, "i": Infinity}')
def test_any_bytes_are_parsed_or_refused_with_a_reason(raw: bytes) -> None:
    result = parse_or_reason(raw)
    if not isinstance(result, str):
        assert isinstance(result, dict)
        get_channel_layer().serialize(push_message(result))


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(tricky_text, json_values, max_size=5))
@example({"nul": "\x00"})
@example({"surrogate": "\ud800"})
@example({"n": 2**64, "f": 1e308})
def test_postgresql_stores_every_accepted_payload_in_jsonb(value: dict) -> None:
    """Against the real database: an accepted payload is stored as the handler stores it (json.dumps, cast
    to jsonb); each refused one that PostgreSQL would also refuse shows the check is needed."""
    result = parse_or_reason(as_raw(value))
    if isinstance(result, str):
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb IS NOT NULL", [json.dumps(result)])
        assert cursor.fetchone() == (True,)


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["\x00", "\ud800"])
def test_postgresql_refuses_what_the_parser_refuses_as_bad_text(text: str) -> None:
    """The reason for bad_text: jsonb really refuses these (so one would fail a whole batched statement)."""
    with pytest.raises(Exception), transaction.atomic(), connection.cursor() as cursor:  # noqa: B017
        cursor.execute("SELECT %s::jsonb", [json.dumps({"s": text})])


SCHEME = TopicScheme(device_prefix="dev", command_prefix="cmd", kinds=KINDS, shared_group="g")
topic_levels = st.one_of(
    st.from_regex(USERNAME_RE, fullmatch=True), tricky_text, st.sampled_from(["+", "#", ""])
)


@EXAMPLES
@given(st.one_of(st.text(max_size=40), st.builds("dev/{}/{}".format, topic_levels, topic_levels)))
def test_device_topic_parser_accepts_exactly_prefix_username_kind(topic: str) -> None:
    parsed = SCHEME.parse_device_topic(topic)
    if parsed is None:
        parts = topic.split("/")
        assert not (
            len(parts) == 3 and parts[0] == "dev" and USERNAME_RE.fullmatch(parts[1]) and parts[2] != ""
        )
        return
    username, kind = parsed
    assert topic == f"dev/{username}/{kind}"
    assert USERNAME_RE.fullmatch(username) and "/" not in kind and kind


usernames = st.one_of(
    st.from_regex(USERNAME_RE, fullmatch=True),
    tricky_text,
    st.sampled_from(["admin", "svc_handler", "svc_publisher", "dev\n", "dev/x", "+", "#", "a" * 65]),
)


@EXAMPLES
@given(usernames)
def test_username_rule_and_command_topic_check_agree(name: str) -> None:
    """publish() takes exactly <command prefix>/<a valid device username>: the same rule the model, the admin
    and the database constraint apply, so a command can reach every device and nothing else."""
    try:
        validate_device_username(name)
        valid = True
    except ValidationError:
        valid = False
    if valid:
        assert USERNAME_RE.fullmatch(name) and len(name) <= 64 and name not in reserved_usernames()
    try:
        validate_command_topic(f"cmd/{name}", SCHEME)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == valid


@EXAMPLES
@given(st.one_of(st.text(max_size=30), st.builds("cmd/{}".format, tricky_text), st.binary(max_size=10)))
def test_command_topic_check_raises_only_type_or_value_errors(topic: object) -> None:
    try:
        validate_command_topic(topic, SCHEME)
    except (TypeError, ValueError):
        return
    assert isinstance(topic, str)
    assert topic.startswith("cmd/") and USERNAME_RE.fullmatch(topic[4:])
