"""Filters of the dashboard templates. `summary` writes values exactly as the page's script does
(static/dashboard/live.js, `summary`), so a value looks the same before and after a live update."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # as JavaScript writes 20.0
    if isinstance(value, int | float | str):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"))


@register.filter
def summary(data: Any) -> str:
    """`{"battery": 87.5, "rssi": -61}` -> `battery 87.5 · rssi -61`."""
    if isinstance(data, dict):
        return " · ".join(f"{key} {_scalar(value)}" for key, value in data.items())
    return "" if data is None else _scalar(data)


@register.filter
def entry(mapping: Any, key: str) -> Any:
    """`latest|entry:kind`: a dict item by a variable key (None when absent)."""
    return mapping.get(key) if isinstance(mapping, dict) else None
