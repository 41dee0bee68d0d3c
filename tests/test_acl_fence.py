"""The generated acl.conf fences every client, proven with the EMQX 5.8 authorization model."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from bake_variants import VARIANTS, compose_config, emqx_nodes, module_constants
from emqx_authz_model import Client, Request, authorize, consult
from pyhocon import ConfigFactory

# Every bake whose topics, kinds, group, QoS or service users differ from the defaults.
FENCED_VARIANTS = sorted(
    name
    for name, answers in VARIANTS.items()
    if not answers
    or {
        "device_topic_prefix",
        "command_topic_prefix",
        "device_message_kinds",
        "shared_subscription_group",
        "ingest_qos",
        "mqtt_handler_username",
        "mqtt_publisher_username",
    }
    & set(answers)
)


def handler(topo: dict) -> Client:
    return Client(username=topo["HANDLER_USERNAME"], clientid="iot-mqtt-handler-1")


def publisher(topo: dict) -> Client:
    return Client(username=topo["PUBLISHER_USERNAME"], clientid="iot-mqtt-publisher-1")


@pytest.fixture(scope="module", params=FENCED_VARIANTS)
def baked(request, bake_project) -> Path:
    return bake_project(VARIANTS[request.param])


@pytest.fixture(scope="module")
def fence(baked):
    topo = module_constants(baked / "src/apps/mqtt_service/topology.py")
    rules = consult(baked / "compose/emqx/acl.conf")

    def decide(client: Client, action: str, topic: str, qos: int = 1, retain: bool = False) -> str:
        return authorize(rules, client, Request(action, topic, qos, retain), no_match="deny")

    return topo, decide


def _emqx_environment(tools, project: Path) -> dict[str, str]:
    # Every node of a cluster has the same authorization (tests/test_bake.py checks it): the first one.
    nodes = emqx_nodes(compose_config(tools, project, "docker-compose.infra.yml")["services"])
    return next(iter(nodes.values()))["environment"]


def test_broker_denies_what_no_rule_allows_and_refuses_anonymous_clients(baked, tools):
    env = _emqx_environment(tools, baked)
    authorization = ConfigFactory.parse_string(env["EMQX_AUTHORIZATION"])
    assert authorization["no_match"] == "deny"
    assert [source["type"] for source in authorization["sources"]] == ["file"]
    assert authorization["sources"][0]["path"] == "/opt/emqx/etc/acl.conf"
    # Clients without a username are turned away before the authentication chain runs.
    assert env["EMQX_LISTENERS__TCP__DEFAULT__ENABLE_AUTHN"] == "quick_deny_anonymous"
    chain = ConfigFactory.parse_string("chain = " + env["EMQX_AUTHENTICATION"])["chain"]
    assert [a["backend"] for a in chain] == ["built_in_database", "postgresql"]
    # Devices are never superusers: the query pins the column to false.
    assert "false AS is_superuser" in chain[1]["query"]


def service_kinds(topo: dict) -> tuple[str, ...]:
    """Every kind a device publishes: the answered ones, then the protocol's presence and reply."""
    return (*topo["DEVICE_MESSAGE_KINDS"], topo["PRESENCE_KIND"], topo["REPLY_KIND"])


def _device(username: str = "dev-001", clientid: str | None = None) -> Client:
    return Client(username=username, clientid=clientid or username)


def test_device_publishes_only_its_own_kinds(fence):
    topo, decide = fence
    dev = _device()
    prefix = topo["DEVICE_TOPIC_PREFIX"]
    for kind in service_kinds(topo):
        for qos in (0, 1, 2):
            assert decide(dev, "publish", f"{prefix}/dev-001/{kind}", qos=qos) == "allow"
        assert decide(dev, "publish", f"{prefix}/dev-002/{kind}") == "deny"
        assert decide(dev, "publish", f"{prefix}/dev-001/{kind}/extra") == "deny"
        assert decide(dev, "publish", f"{prefix}/+/{kind}") == "deny"
    assert decide(dev, "publish", f"{prefix}/dev-001/not-a-kind") == "deny"
    assert decide(dev, "publish", f"{prefix}/dev-001") == "deny"


def test_device_cannot_publish_retained_messages(fence):
    """A retained message would be replayed to the handlers on every (re)subscribe and move the device's
    state back to it: even to its own topics, a device publishes only without the retain flag."""
    topo, decide = fence
    dev = _device()
    prefix = topo["DEVICE_TOPIC_PREFIX"]
    for kind in service_kinds(topo):
        topic = f"{prefix}/dev-001/{kind}"
        for qos in (0, 1, 2):
            assert decide(dev, "publish", topic, qos=qos, retain=True) == "deny", (topic, qos)
            assert decide(dev, "publish", topic, qos=qos, retain=False) == "allow", (topic, qos)


def test_device_cannot_publish_commands_or_anywhere_else(fence):
    topo, decide = fence
    dev = _device()
    cmd = topo["COMMAND_TOPIC_PREFIX"]
    elsewhere = ("#", "other/topic", "$SYS/brokers/x/clients/y/connected")
    for topic in (f"{cmd}/dev-001", f"{cmd}/dev-002", *elsewhere):
        assert decide(dev, "publish", topic) == "deny", topic


def test_device_subscribes_only_to_its_own_command_topic(fence):
    topo, decide = fence
    dev = _device(clientid="some-other-client-id")
    cmd = topo["COMMAND_TOPIC_PREFIX"]
    prefix = topo["DEVICE_TOPIC_PREFIX"]
    group = topo["SHARED_SUBSCRIPTION_GROUP"]
    assert decide(dev, "subscribe", f"{cmd}/dev-001") == "allow"
    denied = [
        f"{cmd}/dev-002",
        f"{cmd}/+",
        f"{cmd}/#",
        "#",
        "+/#",
        "$SYS/#",
        f"{prefix}/dev-001/{topo['DEVICE_MESSAGE_KINDS'][0]}",
        f"{prefix}/+/{topo['DEVICE_MESSAGE_KINDS'][0]}",
        f"$share/{group}/{prefix}/+/{topo['DEVICE_MESSAGE_KINDS'][0]}",
        f"$share/anygroup/{cmd}/dev-002",
        f"$queue/{cmd}/dev-002",
    ]
    for topic in denied:
        assert decide(dev, "subscribe", topic) == "deny", topic


def test_topic_characters_inside_a_username_stay_in_its_own_level(fence):
    """A username is substituted into the filter before it is split into levels. Inside a longer name "+"
    and "#" are plain characters; a whole "+" or "#" name, or one with "/", is what the Django username
    validator refuses (tested in the generated project)."""
    topo, decide = fence
    prefix = topo["DEVICE_TOPIC_PREFIX"]
    kind = topo["DEVICE_MESSAGE_KINDS"][0]
    # A username that is not a whole wildcard level cannot reach another device.
    for username in ("dev+", "a#", "x/y", "dev-001/extra"):
        assert decide(_device(username), "publish", f"{prefix}/dev-002/{kind}") == "deny", username


def test_handler_user_subscribes_to_shared_device_topics_only(fence):
    topo, decide = fence
    prefix = topo["DEVICE_TOPIC_PREFIX"]
    group = topo["SHARED_SUBSCRIPTION_GROUP"]
    for kind in service_kinds(topo):
        shared = f"$share/{group}/{prefix}/+/{kind}"
        assert decide(handler(topo), "subscribe", shared, qos=topo["INGEST_QOS"]) == "allow"
        assert decide(handler(topo), "publish", f"{prefix}/dev-001/{kind}") == "deny"
    assert decide(handler(topo), "subscribe", "$SYS/brokers/+/clients/+/connected") == "allow"
    assert decide(handler(topo), "subscribe", "$SYS/brokers/+/clients/+/disconnected") == "allow"
    for event in ("connected", "disconnected"):  # as the handler subscribes: shared, one replica per event
        shared_events = f"$share/{group}/$SYS/brokers/+/clients/+/{event}"
        assert decide(handler(topo), "subscribe", shared_events) == "allow"
    for topic in ("#", "+/#", "$SYS/#", f"{topo['COMMAND_TOPIC_PREFIX']}/+", f"{prefix}/#"):
        assert decide(handler(topo), "subscribe", topic) == "deny", topic
    assert decide(handler(topo), "publish", f"{topo['COMMAND_TOPIC_PREFIX']}/dev-001") == "deny"


def test_publisher_user_publishes_commands_only(fence):
    topo, decide = fence
    cmd = topo["COMMAND_TOPIC_PREFIX"]
    prefix = topo["DEVICE_TOPIC_PREFIX"]
    for qos in (0, 1, 2):
        assert decide(publisher(topo), "publish", f"{cmd}/dev-001", qos=qos) == "allow"
    kind = topo["DEVICE_MESSAGE_KINDS"][0]
    for topic in (f"{prefix}/dev-001/{kind}", "#", f"{cmd}/dev-001/extra", "$SYS/brokers"):
        assert decide(publisher(topo), "publish", topic) == "deny", topic
    for topic in (f"{cmd}/dev-001", "#", f"{prefix}/+/{kind}"):
        assert decide(publisher(topo), "subscribe", topic) == "deny", topic


def test_strangers_and_anonymous_get_nothing(fence):
    topo, decide = fence
    stranger = Client(username=None, clientid="anon")
    kind = topo["DEVICE_MESSAGE_KINDS"][0]
    own_looking = (f"{topo['DEVICE_TOPIC_PREFIX']}/dev-001/{kind}", f"{topo['COMMAND_TOPIC_PREFIX']}/anon")
    for action in ("publish", "subscribe"):
        for topic in (*own_looking, "#"):
            assert decide(stranger, action, topic) == "deny"


def test_every_username_the_validator_accepts_stays_inside_its_own_fence(fence, baked):
    """Ties the Django username rule to the broker's fence: names drawn from an alphabet that includes every
    character MQTT gives a meaning to, kept when the generated validator's pattern accepts them, must never
    reach another device's topics once substituted into the ACL."""
    topo, decide = fence
    pattern = re.compile(module_constants(baked / "src/apps/devices/usernames.py")["USERNAME_PATTERN"])
    alphabet = "abz09_-" + "+#/$ \x00A." + "\u00e9"
    draw = random.Random(20261129)
    candidates = {"".join(draw.choice(alphabet) for _ in range(draw.randint(1, 5))) for _ in range(20000)}
    candidates |= set(alphabet) | {"a" * 64, "a" * 65}
    accepted = sorted(name for name in candidates if pattern.fullmatch(name) and len(name) <= 64)
    assert len(accepted) > 100, "the sample should exercise the validator"
    prefix, cmd = topo["DEVICE_TOPIC_PREFIX"], topo["COMMAND_TOPIC_PREFIX"]
    victim = "victim-device"
    for name in accepted:
        device = _device(name)
        for kind in service_kinds(topo):
            assert decide(device, "publish", f"{prefix}/{name}/{kind}") == "allow", name
            assert decide(device, "publish", f"{prefix}/{victim}/{kind}") == "deny", name
        assert decide(device, "subscribe", f"{cmd}/{name}") == "allow", name
        assert decide(device, "subscribe", f"{cmd}/{victim}") == "deny", name


def _rules_from_erlang(tmp_path: Path, text: str) -> list:
    path = tmp_path / "acl.conf"
    path.write_text(text)
    return consult(path)


def _decide(rules: list, action: str, qos: int = 1, retain: bool = False, topic: str = "t/1") -> str:
    return authorize(rules, _device(), Request(action, topic, qos, retain), no_match="deny")


def test_model_matches_action_options_as_emqx_does(tmp_path):
    """emqx_authz_rule: {publish, Opts} checks qos and retain; {subscribe, Opts} checks qos only (a retain
    option is ignored); {all, Opts} checks qos for both and retain for publishes; a bare atom ignores both;
    the first retain option counts; no qos option means any QoS."""
    rules = _rules_from_erlang(
        tmp_path,
        "\n".join(
            [
                '{allow, all, {publish, [{retain, false}]}, ["t/1"]}.',
                '{allow, all, {publish, [{qos, [0, 1]}, {retain, true}, {retain, false}]}, ["t/2"]}.',
                '{allow, all, {subscribe, [{qos, 2}, {retain, true}]}, ["t/3"]}.',
                '{allow, all, {all, [{qos, 1}, {retain, all}]}, ["t/4"]}.',
                '{allow, all, {publish, [retain]}, ["t/5"]}.',
                '{allow, all, publish, ["t/6"]}.',
                "{deny, all}.",
            ]
        ),
    )
    assert _decide(rules, "publish", qos=2, retain=False) == "allow"
    assert _decide(rules, "publish", qos=0, retain=True) == "deny"
    assert _decide(rules, "subscribe") == "deny"  # a publish rule never matches a subscribe
    assert _decide(rules, "publish", qos=1, retain=True, topic="t/2") == "allow"
    assert _decide(rules, "publish", qos=1, retain=False, topic="t/2") == "deny"  # first retain option
    assert _decide(rules, "publish", qos=2, retain=True, topic="t/2") == "deny"
    assert _decide(rules, "subscribe", qos=2, topic="t/3") == "allow"
    assert _decide(rules, "subscribe", qos=1, topic="t/3") == "deny"
    assert _decide(rules, "publish", qos=2, topic="t/3") == "deny"
    for action in ("publish", "subscribe"):
        assert _decide(rules, action, qos=1, retain=True, topic="t/4") == "allow"
        assert _decide(rules, action, qos=0, topic="t/4") == "deny"
    assert _decide(rules, "publish", retain=True, topic="t/5") == "allow"  # a bare atom means true
    assert _decide(rules, "publish", retain=False, topic="t/5") == "deny"
    for qos in (0, 1, 2):
        for retain in (False, True):
            assert _decide(rules, "publish", qos=qos, retain=retain, topic="t/6") == "allow"


@pytest.mark.parametrize(
    "action",
    [
        "{publish, [{retain, maybe}]}",
        '{publish, [{retain, "false"}]}',
        "{publish, [{qos, 3}]}",
        "{subscribe, [{qos, [1, 5]}]}",
        "{publish, [qos]}",
        "{publish, {retain, false}}",
        "{pub, [{retain, false}]}",
        "publish_retained",
    ],
)
def test_model_refuses_a_file_with_an_invalid_action_as_emqx_does(tmp_path, action):
    rules = _rules_from_erlang(tmp_path, f'{{allow, all, {action}, ["t/1"]}}.\n{{deny, all}}.\n')
    with pytest.raises(ValueError, match="invalid"):
        _decide(rules, "publish")
