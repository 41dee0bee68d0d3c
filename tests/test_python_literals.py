"""Answers written into generated Python as string literals come out the way ruff formats them, whatever
quotes or characters they hold, so every bake stays `ruff format` clean (its pre-commit checks that)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "hooks"))
sys.dont_write_bytecode = True

from formats import python_string  # noqa: E402

VALUES = ["status", "it's", 'say "hi"', 'O\'Brien "Farm"', '\'"\'""', 'back\\slash"', "Ünïcode\ttab", ""]


@pytest.mark.parametrize("value", VALUES)
def test_literal_round_trips_and_is_ruff_formatted(tools, value: str) -> None:
    source = f"VALUE = {python_string(value)}\n"
    assert ast.literal_eval(source.split(" = ", 1)[1]) == value
    formatted = subprocess.run(
        [str(tools.ruff), "format", "--no-cache", "--stdin-filename", "topology.py", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert formatted.returncode == 0, formatted.stderr
    assert formatted.stdout == source
