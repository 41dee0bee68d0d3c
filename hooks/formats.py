"""Write one answer value safely in the format of the file it lands in.

Every function takes an already validated answer (hooks/answers.py refuses control, format and separator
characters in text answers) and returns the literal for its format, quotes included where the format has
them. The Jinja extension (local_extensions.py) exposes them as filters, so no rendered file pastes a raw
value.
"""

from __future__ import annotations

import json
import re
import shlex

# Markdown gives these ASCII characters a meaning anywhere in a line (emphasis, code, links, HTML, tables,
# strikethrough, entities); a backslash makes each one literal (CommonMark 2.4).
_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>|~&])")
# ... and these only where a line starts (headings, lists, block quotes, ordered lists).
_MARKDOWN_LINE_START = re.compile(r"^([#+\->=]|\d+(?=[.)]))")


def _escaped_char(char: str) -> str:
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"\\u{code:04x}"
    return char


def toml_string_body(value: str) -> str:
    """The inside of a TOML basic string (the template writes the quotes, so its own file stays valid TOML
    for tools). Non-ASCII text stays as UTF-8 (TOML files are UTF-8)."""
    body = value.replace("\\", "\\\\").replace('"', '\\"')
    return "".join(_escaped_char(char) for char in body)


def python_string(value: str) -> str:
    """A Python string literal quoted the way `ruff format` leaves it: double quotes unless the text holds
    more double than single quotes."""
    quote = "'" if value.count('"') > value.count("'") else '"'
    body = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return quote + "".join(_escaped_char(char) for char in body) + quote


def json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def markdown_text(value: str) -> str:
    """Text shown literally in Markdown (headings, paragraphs, table cells): characters Markdown gives a
    meaning are backslash-escaped, so `*`, `_`, `|`, `<` or a backtick in a name never turns into markup."""
    escaped = _MARKDOWN_INLINE.sub(r"\\\1", value)
    start = _MARKDOWN_LINE_START.match(escaped)
    if start and start.group(1).isdigit():
        return escaped[: start.end()] + "\\" + escaped[start.end() :]
    return _MARKDOWN_LINE_START.sub(r"\\\1", escaped)


def markdown_code(value: str) -> str:
    """A Markdown code span holding `value` literally, with a fence longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{padding}{value}{padding}{fence}"


def shell_word(value: str) -> str:
    """One POSIX shell word holding `value` literally (single-quoted when it needs quoting)."""
    return shlex.quote(value)


FILTERS = {
    "toml_body": toml_string_body,
    "py": python_string,
    "json_str": json_string,
    "md": markdown_text,
    "md_code": markdown_code,
    "sh": shell_word,
}
