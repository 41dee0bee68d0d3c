"""Medians over runs and the printed table: every project figure beside the baseline of the same run."""

from __future__ import annotations

import statistics
from typing import Any

TARGETS = {"publisher": 0.80, "handler_ingest": 0.60, "latency_p99_ms": 50.0}


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(float(value))
    return statistics.median(values)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure; each ratio is the median of the per-run ratios (figure / same-run baseline)."""
    ratios = {
        name: statistics.median(run[name]["project"] / run[name]["baseline"] for run in runs)
        for name in ("publisher", "handler_ingest")
    }
    return {
        "publisher": {
            "project": _median(runs, "publisher", "project"),
            "baseline": _median(runs, "publisher", "baseline"),
            "ratio": ratios["publisher"],
            "live_producer": _median(runs, "publisher", "project_live_producer"),
            "live_producer_ratio": statistics.median(
                run["publisher"]["project_live_producer"] / run["publisher"]["baseline"] for run in runs
            ),
        },
        "handler_ingest": {
            "project": _median(runs, "handler_ingest", "project"),
            "baseline": _median(runs, "handler_ingest", "baseline"),
            "ratio": ratios["handler_ingest"],
        },
        "latency": {
            key: _median(runs, "latency", key)
            for key in ("rate", "ws_received", "ws_p50_ms", "ws_p99_ms", "raw_p50_ms", "raw_p99_ms")
        },
        "replicas": {
            "one": _median(runs, "replicas", "one"),
            "two": _median(runs, "replicas", "two"),
            "ratio": statistics.median(run["replicas"]["two"] / run["replicas"]["one"] for run in runs),
        },
    }


def format_table(summary: dict[str, Any], runs: int) -> str:
    pub, ing, lat, rep = (
        summary["publisher"],
        summary["handler_ingest"],
        summary["latency"],
        summary["replicas"],
    )
    rows = [
        ("measurement", "project", "baseline (same run)", "ratio", "target"),
        (
            "(a) publisher, queue pre-filled, msgs/s",
            f"{pub['project']:,.0f}",
            f"{pub['baseline']:,.0f} raw aiomqtt, 100 in flight",
            f"{pub['ratio']:.0%}",
            f">= {TARGETS['publisher']:.0%} {'met' if pub['ratio'] >= TARGETS['publisher'] else 'MISSED'}",
        ),
        (
            "(a) same, producer enqueueing concurrently",
            f"{pub['live_producer']:,.0f}",
            "the same raw publisher",
            f"{pub['live_producer_ratio']:.0%}",
            "",
        ),
        (
            "(b) handler ingest, DB + WebSocket, msgs/s",
            f"{ing['project']:,.0f}",
            f"{ing['baseline']:,.0f} raw counting subscriber",
            f"{ing['ratio']:.0%}",
            f">= {TARGETS['handler_ingest']:.0%} "
            f"{'met' if ing['ratio'] >= TARGETS['handler_ingest'] else 'MISSED'}",
        ),
        (
            f"(c) device -> WebSocket at {lat['rate']:,.0f} msgs/s, p50 / p99 ms",
            f"{lat['ws_p50_ms']:.1f} / {lat['ws_p99_ms']:.1f}",
            f"{lat['raw_p50_ms']:.1f} / {lat['raw_p99_ms']:.1f} raw MQTT subscriber",
            "",
            f"p99 < {TARGETS['latency_p99_ms']:.0f} "
            f"{'met' if lat['ws_p99_ms'] < TARGETS['latency_p99_ms'] else 'MISSED'}",
        ),
        (
            "(d) ingest with 2 handler replicas, msgs/s",
            f"{rep['two']:,.0f}",
            f"{rep['one']:,.0f} with 1 replica",
            f"{rep['ratio']:.2f}x",
            "",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"Medians of {runs} run(s); each ratio is the median of per-run ratios."]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
