"""Device payloads: parsed once, and refused at the door when a downstream would refuse them later.

A payload the handler accepts is a JSON object that PostgreSQL's jsonb stores, that the channel layer's
msgpack encodes, and that a browser's JSON.parse reads. Everything else is refused here with one reason
(counted and logged by the handler), so it can never fail a batch of other devices' messages:

- `too_large`  more than MAX_PAYLOAD_BYTES bytes;
- `not_utf8`   the bytes are not UTF-8 text;
- `not_json`   not JSON text (syntax error);
- `too_deep`   objects/arrays nested deeper than MAX_DEPTH (deep nesting also exhausts parsers' stacks);
- `bad_number` NaN or Infinity in any spelling (including numbers such as 1e999 that overflow to infinity),
               or an integer outside the signed 64-bit range (msgpack refuses those, JavaScript loses them);
- `bad_text`   a string or key holding NUL (\\u0000: jsonb refuses it) or a lone surrogate (\\ud800);
- `not_object` valid JSON, but not an object.

Cost: the checks look at the raw bytes first, in C (substring tests, two counts, one byte translation).
Only a payload that could hold a problem (a \\u escape, a digit before an exponent, a run of 19 digits, more
brackets than MAX_DEPTH) is walked once in Python to decide; a typical telemetry payload is never walked.
NaN and Infinity literals are refused by the parser itself.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_PAYLOAD_BYTES = 64 * 1024
# Far deeper than any device needs; well below the limits of json.dumps (about 1,000 levels), msgpack (511,
# less the levels the channel-layer message adds around the payload) and PostgreSQL's stack.
MAX_DEPTH = 32
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

REFUSAL_REASONS = ("too_large", "not_utf8", "not_json", "too_deep", "bad_number", "bad_text", "not_object")

# Only a JSON escape can put NUL or a surrogate into a parsed string: raw control characters are refused by
# the parser (strict mode) and a UTF-8 decoder refuses encoded surrogates.
_TEXT_ESCAPE = b"\\u"
_SURROGATE = re.compile("[\ud800-\udfff]")
# Digits become "0", so one substring test finds a digit before an exponent (only then can a float overflow
# to infinity: otherwise it needs more than 300 digits) or a run of 19 digits (only then can an integer leave
# the 64-bit range).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_INT64_OVERFLOW_RUN = b"0" * 19


class PayloadRefusedError(ValueError):
    """The payload is refused; `reason` is one of REFUSAL_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _NonFiniteLiteralError(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFiniteLiteralError(f"{name} is not a JSON number")


# One decoder for every call: json.loads with any option builds a new decoder (and scanner) each time.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _may_hold_a_problem(raw: bytes | bytearray, max_depth: int) -> bool:
    if _TEXT_ESCAPE in raw or raw.count(b"{") + raw.count(b"[") > max_depth:
        return True
    digits = raw.translate(_DIGITS_AS_ZERO)
    return b"0e" in digits or b"0E" in digits or _INT64_OVERFLOW_RUN in digits


def parse_payload(
    raw: bytes | bytearray | str, *, max_bytes: int = MAX_PAYLOAD_BYTES, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """The payload as a dict, or PayloadRefusedError with its reason. Never raises anything else."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise PayloadRefusedError("too_large", f"size={len(raw)} limit={max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRefusedError("not_utf8", f"at byte {exc.start}") from None
    try:
        value = _DECODER.decode(text)
    except _NonFiniteLiteralError as exc:
        raise PayloadRefusedError("bad_number", str(exc)) from None
    except RecursionError:
        # The C parser counts its nesting against the interpreter's recursion limit: cheap to hit, and a
        # clean error (no deep Python stack is built).
        raise PayloadRefusedError("too_deep", f"nested past the parser's limit (ours: {max_depth})") from None
    except json.JSONDecodeError as exc:
        raise PayloadRefusedError("not_json", str(exc)) from None
    except ValueError:  # an integer literal of thousands of digits, past what int() converts
        raise PayloadRefusedError("bad_number", "an integer with too many digits") from None
    if type(value) is not dict:
        raise PayloadRefusedError("not_object", f"got {type(value).__name__}")
    if _may_hold_a_problem(raw, max_depth):
        problem = find_problem(value, max_depth)
        if problem is not None:
            raise PayloadRefusedError(*problem)
    return value


def find_problem(value: Any, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(reason, detail) for the first value jsonb, msgpack or a browser would refuse, else None.

    One iterative pass (no recursion, so any depth is safe) over what json.loads returned; only containers
    go on the stack, scalars are checked where they are met."""
    if type(value) is not dict and type(value) is not list:
        return _scalar_problem(value)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > max_depth:
            return "too_deep", f"nested deeper than {max_depth} levels"
        if type(container) is dict:
            for key in container:
                if _bad_text(key):
                    return "bad_text", "a key holds NUL or a lone surrogate"
            children = container.values()
        else:
            children = container
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is str or kind is int or kind is float:
                problem = _scalar_problem(child)
                if problem is not None:
                    return problem
    return None


def _scalar_problem(item: Any) -> tuple[str, str] | None:
    kind = type(item)
    if kind is str:
        if _bad_text(item):
            return "bad_text", "a string holds NUL or a lone surrogate"
    elif kind is int:
        if not INT64_MIN <= item <= INT64_MAX:
            return "bad_number", "an integer outside the signed 64-bit range"
    elif kind is float and not math.isfinite(item):
        return "bad_number", "a number that is not finite"
    return None


def _bad_text(text: str) -> bool:
    return "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)
