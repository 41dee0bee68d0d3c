"""A model of EMQX 5.8 file authorization, for proving what a generated acl.conf allows.

EMQX cannot run on the machines that test this template, so the fence is proven against a model of
its documented and implemented semantics (emqx_authz_rule and emqx_topic at 5.8):

- rules are read as Erlang terms; the first rule whose action, client and topic all match decides;
- topic placeholders ${username} and ${clientid} are substituted, then the filter is split into levels,
  so a substituted value containing "/", "+" or "#" changes the filter's meaning (that is what the
  device username rules must prevent);
- a client's topic is matched level by level against the rule's filter: "+" in the rule matches any
  one level, a trailing "#" any rest; {eq, T} matches only the literal T; a wildcard the client sends
  is just a level that only a rule wildcard or the same literal wildcard matches;
- "$share/<group>/" and "$queue/" are stripped before the check;
- an action is publish | subscribe | all, or {Action, Options} with `{qos, Q | [Q]}` and, for publish and
  all, `{retain, true | false | all}` (the first retain option counts; defaults: any QoS, any retain);
  such a rule matches only requests meeting its options, and a bad option refuses the whole file;
- superusers skip authorization; when no rule matches, authorization.no_match decides.

The file is read with Erlang itself (file:consult), so a syntax error fails here exactly as EMQX's own
start-up would.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Erlang snippet: consult the file and print it as JSON with tagged atoms, strings and tuples, so Python
# sees exactly the terms EMQX would.
_CONSULT_AS_JSON = r"""
Enc = fun Enc(T) when is_atom(T) -> ["{\"atom\":", Enc(atom_to_list(T)), "}"];
          Enc(T) when is_integer(T) -> integer_to_list(T);
          Enc(T) when is_binary(T) -> Enc(unicode:characters_to_list(T));
          Enc(T) when is_tuple(T) -> ["{\"tuple\":", Enc(tuple_to_list(T)), "}"];
          Enc([]) -> "[]";
          Enc(T) when is_list(T) ->
              case io_lib:printable_unicode_list(T) of
                  true -> ["{\"str\":[", lists:join(",", [integer_to_list(C) || C <- T]), "]}"];
                  false -> ["[", lists:join(",", [Enc(X) || X <- T]), "]"]
              end
      end,
{ok, Terms} = file:consult(os:getenv("ACL_FILE")),
io:put_chars(iolist_to_binary(["[", lists:join(",", [Enc(X) || X <- Terms]), "]"])),
halt().
"""


class Atom(str):
    """An Erlang atom (a str subclass: it compares equal to its name, and isinstance tells them apart)."""


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "atom" in value:
            return Atom("".join(chr(c) for c in value["atom"]["str"]) if value["atom"] != [] else "")
        if "str" in value:
            return "".join(chr(c) for c in value["str"])
        if "tuple" in value:
            return tuple(_decode(v) for v in value["tuple"])
    return value


def consult(path: Path) -> list:
    """Read an Erlang terms file with erl; raises CalledProcessError on a syntax error."""
    erl = shutil.which("erl")
    if erl is None:
        raise RuntimeError("erl is not installed: install erlang-base to check acl.conf")
    out = subprocess.run(
        [erl, "-noshell", "-eval", _CONSULT_AS_JSON],
        env={"ACL_FILE": str(path), "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return _decode(json.loads(out.stdout))


@dataclass(frozen=True)
class Client:
    username: str | None
    clientid: str
    peerhost: str = "203.0.113.10"
    is_superuser: bool = False


@dataclass(frozen=True)
class Request:
    action: str  # "publish" | "subscribe"
    topic: str
    qos: int = 1
    retain: bool = False


_PLACEHOLDER = re.compile(r"\$\{(username|clientid)\}")


def _levels(topic: str) -> list[str]:
    return topic.split("/")


def _match_levels(name: list[str], flt: list[str]) -> bool:
    """emqx_topic:match/2 on words (no `$` special case: authz matches on words)."""
    if not name and not flt:
        return True
    if flt == ["#"]:
        return True
    if not name or not flt:
        return False
    if name[0] == flt[0] or flt[0] == "+":
        return _match_levels(name[1:], flt[1:])
    return False


def _render(flt: str, client: Client) -> str | None:
    """Substitute placeholders; None when a value is missing (render_strict fails: no match)."""
    missing = False

    def value(m: re.Match) -> str:
        nonlocal missing
        v = client.username if m.group(1) == "username" else client.clientid
        if v is None:
            missing = True
            return ""
        return v

    rendered = _PLACEHOLDER.sub(value, flt)
    return None if missing else rendered


def _match_topic(client: Client, topic: str, condition) -> bool:
    if isinstance(condition, tuple) and condition[0] == Atom("eq"):
        return topic == condition[1]
    rendered = _render(condition, client)
    return rendered is not None and _match_levels(_levels(topic), _levels(rendered))


def _match_who(client: Client, who) -> bool:
    if who == Atom("all"):
        return True
    kind, arg = who
    if kind in ("and", "or"):
        results = [_match_who(client, w) for w in arg]
        return all(results) if kind == "and" else any(results)
    if kind in ("username", "user", "clientid", "client"):
        value = client.username if kind in ("username", "user") else client.clientid
        if value is None:
            return False
        if isinstance(arg, tuple) and arg[0] == Atom("re"):
            return re.search(arg[1], value) is not None
        return value == arg
    if kind in ("ipaddr", "ipaddrs"):
        cidrs = [arg] if kind == "ipaddr" else arg
        host = ipaddress.ip_address(client.peerhost)
        return any(host in ipaddress.ip_network(c, strict=False) for c in cidrs)
    raise ValueError(f"unknown who condition {who!r}")


_ACTION_TYPES = ("publish", "subscribe", "all")
_ANY_QOS = frozenset({0, 1, 2})


@dataclass(frozen=True)
class ActionCondition:
    """A rule's action, compiled as emqx_authz_rule:compile_action does. `qos`/`retain` are None for a bare
    atom (publish | subscribe | all), which matches whatever the QoS and retain flag."""

    action_type: str
    qos: frozenset[int] | None = None
    retain: bool | str | None = None  # True, False or "all"


def _option_values(options: list, key: str) -> list:
    """proplists:get_all_values/2: {key, V} pairs, and a bare atom key meaning {key, true}."""
    values = []
    for option in options:
        if isinstance(option, tuple) and len(option) == 2 and option[0] == key:
            values.append(option[1])
        elif isinstance(option, Atom) and option == key:
            values.append(Atom("true"))
    return values


def _qos_condition(options: list) -> frozenset[int]:
    values = _option_values(options, "qos")
    if not values:
        return _ANY_QOS  # ?DEFAULT_RULE_QOS
    qos: set[int] = set()
    for value in values:
        for level in value if isinstance(value, list) else [value]:
            # Anything but an integer 0..2 (or a list of them) makes EMQX refuse the whole file.
            if isinstance(level, Atom) or not isinstance(level, int) or level not in _ANY_QOS:
                raise ValueError(f"invalid qos {level!r} in action options {options!r}")
            qos.add(level)
    return frozenset(qos)


def _retain_condition(options: list) -> bool | str:
    values = _option_values(options, "retain")
    value = values[0] if values else Atom("all")  # proplists:get_value/3: the first one; default all
    if value == Atom("all") and isinstance(value, Atom):
        return "all"
    if isinstance(value, Atom) and value in ("true", "false"):
        return value == "true"
    raise ValueError(f"invalid retain {value!r} in action options {options!r}")


def compile_action(action) -> ActionCondition:
    """publish | subscribe | all, or {publish | all, Options} (qos and retain) or {subscribe, Options}
    (qos only: a retain option is ignored there). Anything else makes EMQX refuse the file: ValueError."""
    if isinstance(action, Atom):
        if action not in _ACTION_TYPES:
            raise ValueError(f"invalid action {action!r}")
        return ActionCondition(str(action))
    if (
        isinstance(action, tuple)
        and len(action) == 2
        and isinstance(action[0], Atom)
        and action[0] in _ACTION_TYPES
        and isinstance(action[1], list)
    ):
        kind, options = str(action[0]), action[1]
        retain = None if kind == "subscribe" else _retain_condition(options)
        return ActionCondition(kind, _qos_condition(options), retain)
    raise ValueError(f"invalid action {action!r}")


def _match_action(request: Request, action) -> bool:
    """emqx_authz_rule:match_action/2."""
    condition = compile_action(action)
    if condition.qos is None:
        return condition.action_type in ("all", request.action)
    if condition.action_type not in ("all", request.action):
        return False
    if request.qos not in condition.qos:
        return False
    if request.action == "publish":
        return condition.retain == "all" or condition.retain == request.retain
    return True


def _real_topic(request: Request) -> str:
    topic = request.topic
    if request.action == "subscribe":
        if topic.startswith("$share/"):
            return topic.split("/", 2)[2]
        if topic.startswith("$queue/"):
            return topic[len("$queue/") :]
    return topic


def authorize(rules: list, client: Client, request: Request, no_match: str = "deny") -> str:
    """Return "allow" or "deny" as EMQX 5.8 would for one file source."""
    for rule in rules:  # EMQX compiles every rule when it loads the file: one bad action refuses them all
        if len(rule) == 4:
            compile_action(rule[2])
    if client.is_superuser:
        return "allow"
    topic = _real_topic(request)
    for rule in rules:
        if len(rule) == 2:  # {allow|deny, all}
            permission, who = rule
            if who == Atom("all"):
                return str(permission)
            raise ValueError(f"unknown two-element rule {rule!r}")
        permission, who, action, topics = rule
        if (
            _match_action(request, action)
            and _match_who(client, who)
            and any(_match_topic(client, topic, t) for t in topics)
        ):
            return str(permission)
    return no_match
