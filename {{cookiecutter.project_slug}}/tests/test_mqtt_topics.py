"""Topic names come from the answered topology; parsing refuses anything that is not a device topic."""

import pytest

from apps.mqtt_service import topics, topology
from apps.mqtt_service.topics import TopicScheme, validate_publish_topic


def test_default_topics_follow_the_topology() -> None:
    kind = topology.DEVICE_MESSAGE_KINDS[0]
    assert topics.device_topic("dev-1", kind) == f"{topology.DEVICE_TOPIC_PREFIX}/dev-1/{kind}"
    assert topics.command_topic("dev-1") == f"{topology.COMMAND_TOPIC_PREFIX}/dev-1"
    assert topics.handler_subscriptions() == [
        f"$share/{topology.SHARED_SUBSCRIPTION_GROUP}/{topology.DEVICE_TOPIC_PREFIX}/+/{kind}"
        for kind in topology.SERVICE_KINDS
    ]
    # The answered kinds, then the device protocol's own: presence announcements and command replies.
    assert topology.SERVICE_KINDS == (
        *topology.DEVICE_MESSAGE_KINDS,
        topology.PRESENCE_KIND,
        topology.REPLY_KIND,
    )


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("dev/abc/status", ("abc", "status")),
        ("dev/abc/event", ("abc", "event")),
        ("dev/abc", None),
        ("dev/abc/status/extra", None),
        ("other/abc/status", None),
        ("dev//status", None),
        ("dev/abc/", None),
        ("", None),
        # Not a username a device can have: refused before any database lookup.
        ("dev/ABC/status", None),
        ("dev/a b/status", None),
        ("dev/+/status", None),
        ("dev/_abc/status", None),
        ("dev/" + "a" * 65 + "/status", None),
    ],
)
def test_parse_device_topic(topic: str, expected: tuple[str, str] | None) -> None:
    scheme = TopicScheme(device_prefix="dev", command_prefix="cmd", kinds=("status",), shared_group="g")
    assert scheme.parse_device_topic(topic) == expected


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        ("", ValueError),
        ("to_device/+", ValueError),
        ("to_device/#", ValueError),
        ("$SYS/broker", ValueError),
        ("to_device/a\x00b", ValueError),
        ("to_device/" + "x" * 65535, ValueError),
        ("to_device/\ud800", ValueError),
        (b"to_device/x", TypeError),
        (None, TypeError),
    ],
)
def test_invalid_publish_topics_are_refused(topic: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        validate_publish_topic(topic)


def test_valid_publish_topic_is_returned() -> None:
    assert validate_publish_topic("to_device/device_001") == "to_device/device_001"
