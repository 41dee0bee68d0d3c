"""Prints how each figure changed between two benchmark results: `python3 bench/compare.py OLD.json NEW.json`.

OLD and NEW are the JSON files bench/run.py writes. Every figure of either side is listed with its change,
absolute and in percent. A change in the direction that matters beyond `--threshold` percent is marked:
`worse` (lower throughput, higher latency or CPU) or `better`. Baselines and other context figures are shown
unmarked. A figure only one side has (an older benchmark, a renamed row) is listed as such. Always exits 0
once both files are read: the output is for a person (a pull request), not a gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cpu import format_machine
from report import Figure, figures


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"compare: cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("median"), dict):
        raise SystemExit(f"compare: {path} is not a benchmark result (no `median` object)")
    return data


def verdict(figure: Figure, old: float, new: float, threshold: float) -> str:
    if figure.better is None or old == new:
        return ""
    if old != 0 and abs(new - old) / abs(old) * 100 < threshold:
        return ""
    rose = new > old
    return "better" if rose == (figure.better == "higher") else "worse"


def _number(value: float, scale: float) -> str:
    """Two decimals for small figures (ratios, milliseconds), none for large ones (rates)."""
    return f"{value:,.2f}" if abs(scale) < 100 else f"{value:,.0f}"


def compare(old: dict[str, Any], new: dict[str, Any], threshold: float) -> list[tuple[str, ...]]:
    before = {figure.key: figure for figure in figures(old["median"])}
    after = {figure.key: figure for figure in figures(new["median"])}
    rows: list[tuple[str, ...]] = [("figure", "old", "new", "change", "%", "")]
    for key in dict.fromkeys([*after, *before]):
        figure = after.get(key) or before[key]
        if key not in before:
            rows.append((figure.label, "-", _number(figure.value, figure.value), "", "", "only in NEW"))
            continue
        if key not in after:
            rows.append((figure.label, _number(figure.value, figure.value), "-", "", "", "only in OLD"))
            continue
        was, now = before[key].value, after[key].value
        scale = max(abs(was), abs(now))
        percent = f"{(now - was) / abs(was) * 100:+.1f}%" if was else ""
        change = f"{'+' if now >= was else '-'}{_number(abs(now - was), scale)}"
        rows.append(
            (
                figure.label,
                _number(was, scale),
                _number(now, scale),
                change,
                percent,
                verdict(figure, was, now, threshold),
            )
        )
    return rows


def render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            *(cell.rjust(width) for cell, width in zip(row[1:5], widths[1:5], strict=True)),
        ]
        lines.append("  ".join([*cells, row[5]]).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("old", type=Path, help="the earlier result (e.g. of main)")
    parser.add_argument("new", type=Path, help="the later result (e.g. of the pull request)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        help="percent a figure must move before it is marked better or worse (default 5)",
    )
    args = parser.parse_args(argv)
    old, new = load(args.old), load(args.new)
    for name, data in (("OLD", old), ("NEW", new)):
        runs = len(data.get("runs", []))
        machine = format_machine(data["machine"]) if "machine" in data else "Machine: not recorded"
        sys.stdout.write(f"{name} {data.get('messages', '?')} messages, {runs} run(s). {machine}\n")
    sys.stdout.write(render(compare(old, new, args.threshold)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
