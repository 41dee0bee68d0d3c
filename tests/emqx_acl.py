"""Read a generated acl.conf with Erlang's own parser (file:consult), as EMQX does at start-up."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

# Prints one line per rule: permission, who, action (as Erlang terms) and topics, tab-separated; a topic
# written {eq, T} comes out as "eq:" + T. Strings are printed as their characters, not as Erlang syntax.
_PRINT_RULES = r"""
{ok, Terms} = file:consult(os:getenv("ACL_FILE")),
Topic = fun({eq, T}) -> ["eq:", T]; (T) -> T end,
Line = fun({P, all}) -> io_lib:format("~s\tall\tall\t~n", [P]);
          ({P, Who, Action, Topics}) ->
              io_lib:format("~s\t~0p\t~0p\t~ts~n",
                            [P, Who, Action, lists:join([31], [Topic(T) || T <- Topics])])
       end,
io:put_chars(unicode:characters_to_binary([Line(T) || T <- Terms])),
halt().
"""


@dataclass(frozen=True)
class AclRule:
    permission: str
    who: str
    action: str
    topics: tuple[str, ...]


def read_acl(erl: Path, path: Path) -> list[AclRule]:
    """The rules of `path`; raises CalledProcessError if Erlang cannot parse the file."""
    result = subprocess.run(
        [str(erl), "-noshell", "-eval", _PRINT_RULES],
        env={"ACL_FILE": str(path), "PATH": "/usr/bin:/bin", "HOME": str(path.parent)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rules = []
    for line in result.stdout.splitlines():
        permission, who, action, topics = line.split("\t")
        rules.append(AclRule(permission, who, action, tuple(topics.split("\x1f")) if topics else ()))
    return rules
