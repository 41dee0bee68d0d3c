"""compose/emqx/acl.conf: EMQX file authorization, built as a list of rules and written as Erlang terms.

Least privilege (first match wins, no_match is deny as well):
- the handler's service user may only subscribe to the device topics of each kind and of the protocol's own
  kinds, presence and reply (EMQX strips "$share/<group>/" before the check, so the rule names the real
  topic), and to the broker's client connected/disconnected events;
- the publisher's service user may only publish under the command prefix;
- a device may only publish to <device prefix>/<its username>/<kind> (answered kinds, presence, reply), never
  retained (a retained message
  would be replayed to the handlers on every (re)subscribe and move the device's state back), and
  subscribe to <command prefix>/<its username>;
- nobody else reads $SYS or subscribes to everything; the last rule denies the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from answers import PRESENCE_KIND, REPLY_KIND, Answers

PRESENCE_TOPICS = (
    "$SYS/brokers/+/clients/+/connected",
    "$SYS/brokers/+/clients/+/disconnected",
)


@dataclass(frozen=True)
class Eq:
    """A topic matched literally ({eq, Topic}), so a wildcard in it is not a wildcard."""

    topic: str


@dataclass(frozen=True)
class Rule:
    comment: str
    permission: str  # allow | deny
    who: tuple | str | None = None  # None: the two-element {Permission, all} catch-all
    action: str = "all"
    topics: tuple[str | Eq, ...] = ()
    # EMQX 5 action options, e.g. (("retain", "false"),): written {publish, [{retain, false}]}, the rule then
    # matches only publishes meeting them. Values are Erlang atoms or integers.
    action_options: tuple[tuple[str, str], ...] = ()


def _erlang_string(value: str) -> str:
    """An ASCII Erlang string literal; non-ASCII characters become \\x{...} escapes."""
    out = []
    for char in value:
        if char in {'"', "\\"}:
            out.append("\\" + char)
        elif 0x20 <= ord(char) < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{{{ord(char):X}}}")
    return '"' + "".join(out) + '"'


def _erlang_who(who: tuple | str) -> str:
    if who == "all":
        return "all"
    kind, value = who
    return "{" + kind + ", " + _erlang_string(value) + "}"


def _erlang_topic(topic: str | Eq) -> str:
    if isinstance(topic, Eq):
        return "{eq, " + _erlang_string(topic.topic) + "}"
    return _erlang_string(topic)


def _erlang_action(rule: Rule) -> str:
    if not rule.action_options:
        return rule.action
    options = ", ".join("{" + f"{name}, {value}" + "}" for name, value in rule.action_options)
    return "{" + f"{rule.action}, [{options}]" + "}"


def render_rule(rule: Rule) -> str:
    """One rule as an Erlang term terminated by '.', preceded by its %% comment."""
    if rule.who is None:
        term = "{" + rule.permission + ", all}."
    else:
        topics = ", ".join(_erlang_topic(t) for t in rule.topics)
        term = "{" + f"{rule.permission}, {_erlang_who(rule.who)}, {_erlang_action(rule)}, [{topics}]" + "}."
    return f"%% {rule.comment}\n{term}\n"


def acl_rules(answers: Answers) -> list[Rule]:
    device = answers.device_topic_prefix
    command = answers.command_topic_prefix
    # The answered kinds, then the device protocol's own: presence announcements and command replies.
    kinds = (*answers.device_message_kinds, PRESENCE_KIND, REPLY_KIND)
    handler = ("username", answers.handler_username)
    publisher = ("username", answers.publisher_username)
    return [
        Rule(
            "Handler service: read every device's messages (shared subscription) and client presence.",
            "allow",
            handler,
            "subscribe",
            tuple(f"{device}/+/{kind}" for kind in kinds) + PRESENCE_TOPICS,
        ),
        Rule("Handler service: nothing else.", "deny", handler, "all", ("#", "$SYS/#")),
        Rule(
            "Publisher service: send commands to any device.",
            "allow",
            publisher,
            "publish",
            (f"{command}/+",),
        ),
        Rule("Publisher service: nothing else.", "deny", publisher, "all", ("#", "$SYS/#")),
        Rule(
            "Devices: publish only to their own topics (each kind, presence, reply), never retained.",
            "allow",
            "all",
            "publish",
            tuple(f"{device}/${{username}}/{kind}" for kind in kinds),
            action_options=(("retain", "false"),),
        ),
        Rule(
            "Devices: subscribe only to their own command topic.",
            "allow",
            "all",
            "subscribe",
            (f"{command}/${{username}}",),
        ),
        Rule(
            "Nobody else reads broker internals or subscribes to everything.",
            "deny",
            "all",
            "subscribe",
            ("$SYS/#", Eq("#")),
        ),
        Rule("Everything not allowed above is denied.", "deny"),
    ]


def acl_conf(answers: Answers) -> str:
    """The whole acl.conf text."""
    header = (
        "%% EMQX file authorization, generated from the template answers: regenerate rather than edit.\n"
        "%% First matching rule wins; superusers skip it; authorization.no_match is deny.\n"
        "%% ${username} is the client's authenticated username, substituted by EMQX.\n\n"
    )
    return header + "\n".join(render_rule(rule) for rule in acl_rules(answers))
