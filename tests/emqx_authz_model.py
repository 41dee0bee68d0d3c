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


def _match_action(request: Request, action) -> bool:
    if isinstance(action, Atom):
        return action == "all" or action == request.action
    kind, opts = action
    if kind not in (request.action, "all"):
        return False
    qos_values = [q for key, q in opts if key == "qos"]
    allowed_qos = {q for v in qos_values for q in (v if isinstance(v, list) else [v])} or {0, 1, 2}
    if request.qos not in allowed_qos:
        return False
    if request.action == "publish":
        retain = dict(opts).get("retain", Atom("all"))
        return retain == Atom("all") or (retain == Atom("true")) == request.retain
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
