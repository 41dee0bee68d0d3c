import math

import pytest

from websocket.groups import MAX_GROUP_NAME_LENGTH, safe_group_name, user_group
from websocket.utils.senders import websocket_sender


@pytest.mark.parametrize(
    "payload", [{"when": object()}, {"value": math.nan}, {1j: "complex key"}, {"s": {1, 2}}]
)
def test_non_json_payload_is_a_clear_type_error(payload):
    with pytest.raises(TypeError, match="JSON-serialisable"):
        websocket_sender.send_to_user(1, payload)


async def test_async_twin_refuses_non_json_payload_too():
    with pytest.raises(TypeError, match="JSON-serialisable"):
        await websocket_sender.asend_to_group("staff", {"bytes": b"raw"})


def test_user_group_name():
    assert user_group(42) == "user.42"
    assert user_group("7") == "user.7"
    with pytest.raises(ValueError):
        user_group("7; DROP")


@pytest.mark.parametrize("name", ["user.1", "staff", "a-b_c.d"])
def test_valid_group_names_are_kept(name):
    assert safe_group_name(name) == name


@pytest.mark.parametrize("name", ["dev/1", "dev 1", "ünïcode", "", "x" * 150, "a#b", "a+b"])
def test_unsafe_group_names_are_cleaned_valid_and_stable(name):
    cleaned = safe_group_name(name)
    assert 0 < len(cleaned) <= MAX_GROUP_NAME_LENGTH
    assert all(char.isascii() and (char.isalnum() or char in "._-") for char in cleaned)
    assert safe_group_name(cleaned) == cleaned
    assert safe_group_name(name) == cleaned


def test_cleaning_never_merges_two_names():
    assert safe_group_name("dev/1") != safe_group_name("dev 1")
    assert safe_group_name("dev/1") != "dev_1"
