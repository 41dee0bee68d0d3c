"""Medians over runs, the printed tables (every project figure beside the baseline of the same run, with the
machine), and the list of figures with the direction in which each one is better (for compare.py)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cpu import format_machine

TARGETS = {
    "publisher": 0.80,
    "handler_ingest": 0.60,
    "latency_p99_ms": 50.0,
    "fleet_ingest": 0.90,
    "sockets_p99_ms": 100.0,
    # (g): every device online within this long after the last one connected.
    "connect_slack_s": 1.0,
}

# CPU scenarios in table order: label, what the baseline column is.
CPU_SCENARIOS = {
    "publisher": ("(a) publisher, queue pre-filled", "raw aiomqtt publisher"),
    "publisher_live_producer": ("(a) same, producer concurrent", "raw aiomqtt publisher"),
    "handler_ingest": ("(b) handler ingest", "raw counting subscriber"),
    "latency": ("(c) device -> WebSocket, 1,000/s", "raw subscriber, same feed"),
    "replicas_two": ("(d) 2 handler replicas", "(b): 1 replica"),
    "fleet_ingest": ("(e) 10,000 devices, spread", "(b): 4 devices"),
    "fleet_websockets": ("(f) 1,001 sockets, 2,000/s", ""),
    "fleet_connect": ("(g) per 1,000 devices connecting", ""),
}
TOTAL = "total"
# Scenarios whose CPU baseline is another scenario's figure.
REPEATED_BASELINES = {"publisher_live_producer", "replicas_two", "fleet_ingest"}


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(float(value))
    return statistics.median(values)


def _ratio(runs: list[dict[str, Any]], name: str, figure: str = "project") -> float:
    return statistics.median(run[name][figure] / run[name]["baseline"] for run in runs)


def summarize_cpu(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per scenario and side: the median of each group's ms per 1,000 messages, and of the per-run totals."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    recorded = runs[0].get("cpu", {})
    for scenario in [*(name for name in CPU_SCENARIOS if name in recorded), *recorded.keys() - CPU_SCENARIOS]:
        summary[scenario] = {}
        for side in ("project", "baseline"):
            groups = list(dict.fromkeys(group for run in runs for group in run["cpu"][scenario][side]))
            sides = [run["cpu"][scenario][side] for run in runs]
            medians = {group: statistics.median(side_.get(group, 0.0) for side_ in sides) for group in groups}
            if groups:  # (f) and (g) have a stated target, no baseline path: no total either
                medians[TOTAL] = statistics.median(sum(side_.values()) for side_ in sides)
            summary[scenario][side] = medians
    return summary


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure; each ratio is the median of the per-run ratios (figure / same-run baseline)."""
    summary: dict[str, Any] = {
        "publisher": {
            "project": _median(runs, "publisher", "project"),
            "baseline": _median(runs, "publisher", "baseline"),
            "ratio": _ratio(runs, "publisher"),
            "live_producer": _median(runs, "publisher", "project_live_producer"),
            "live_producer_ratio": _ratio(runs, "publisher", "project_live_producer"),
        },
        "handler_ingest": {
            "project": _median(runs, "handler_ingest", "project"),
            "baseline": _median(runs, "handler_ingest", "baseline"),
            "ratio": _ratio(runs, "handler_ingest"),
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
        "fleet_ingest": {
            "project": _median(runs, "fleet_ingest", "project"),
            "baseline": _median(runs, "fleet_ingest", "baseline"),
            "ratio": _ratio(runs, "fleet_ingest"),
            "devices": _median(runs, "fleet_ingest", "devices"),
        },
    }
    if all("fleet_websockets" in run for run in runs):
        summary["fleet_websockets"] = {
            key: _median(runs, "fleet_websockets", key) for key in runs[0]["fleet_websockets"]
        }
    if all("fleet_connect" in run for run in runs):
        summary["fleet_connect"] = {
            key: _median(runs, "fleet_connect", key) for key in runs[0]["fleet_connect"]
        }
    summary["cpu"] = summarize_cpu(runs)
    return summary


@dataclass(frozen=True)
class Figure:
    """One figure of a summary. `better` is "higher" or "lower"; None for context (a baseline, the rate
    achieved by the feed), whose change is shown but never called a regression."""

    key: str
    label: str
    value: float
    better: str | None


# (path in the summary, label, better)
_FIXED = [
    (("publisher", "project"), "(a) publisher, msgs/s", "higher"),
    (("publisher", "baseline"), "(a) raw publisher baseline, msgs/s", None),
    (("publisher", "ratio"), "(a) publisher / baseline", "higher"),
    (("publisher", "live_producer"), "(a) producer concurrent, msgs/s", "higher"),
    (("publisher", "live_producer_ratio"), "(a) producer concurrent / baseline", "higher"),
    (("handler_ingest", "project"), "(b) handler ingest, msgs/s", "higher"),
    (("handler_ingest", "baseline"), "(b) raw subscriber baseline, msgs/s", None),
    (("handler_ingest", "ratio"), "(b) ingest / baseline", "higher"),
    (("latency", "ws_p50_ms"), "(c) device -> WebSocket p50, ms", "lower"),
    (("latency", "ws_p99_ms"), "(c) device -> WebSocket p99, ms", "lower"),
    (("latency", "ws_received"), "(c) events received on the WebSocket", "higher"),
    (("latency", "raw_p50_ms"), "(c) raw subscriber p50, ms", None),
    (("latency", "raw_p99_ms"), "(c) raw subscriber p99, ms", None),
    (("latency", "rate"), "(c) feed rate achieved, msgs/s", None),
    (("replicas", "two"), "(d) ingest with 2 replicas, msgs/s", "higher"),
    (("replicas", "ratio"), "(d) 2 replicas / 1", "higher"),
    (("fleet_ingest", "project"), "(e) ingest, 10,000 devices, msgs/s", "higher"),
    (("fleet_ingest", "ratio"), "(e) ingest / (b)", "higher"),
    (("fleet_websockets", "owner_p50_ms"), "(f) device -> owner's socket p50, ms", "lower"),
    (("fleet_websockets", "owner_p99_ms"), "(f) device -> owner's socket p99, ms", "lower"),
    (("fleet_websockets", "staff_p50_ms"), "(f) device -> staff socket p50, ms", "lower"),
    (("fleet_websockets", "staff_p99_ms"), "(f) device -> staff socket p99, ms", "lower"),
    (("fleet_websockets", "lost"), "(f) events lost", "lower"),
    (("fleet_websockets", "misrouted"), "(f) events on another owner's socket", "lower"),
    (("fleet_websockets", "rate"), "(f) feed rate achieved, msgs/s", None),
    (("fleet_connect", "database_s"), "(g) all online in the database after, s", "lower"),
    (("fleet_connect", "socket_s"), "(g) all online on the staff socket after, s", "lower"),
    (("fleet_connect", "online_in_database"), "(g) devices online in the database", "higher"),
]


def _lookup(summary: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = summary
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def figures(summary: dict[str, Any]) -> Iterator[Figure]:
    """Every figure the summary holds (a summary from an older benchmark may lack some)."""
    for path, label, better in _FIXED:
        value = _lookup(summary, path)
        if value is not None:
            yield Figure(".".join(path), label, value, better)
    for scenario, sides in summary.get("cpu", {}).items():
        name = CPU_SCENARIOS.get(scenario, (scenario, ""))[0]
        for group, value in sides.get("project", {}).items():
            yield Figure(
                f"cpu.{scenario}.project.{group}",
                f"{name}: {group.replace('_', ' ')}, CPU ms/1k",
                float(value),
                "lower",
            )
        # The baseline's CPU is context, its total enough; (a) concurrent, (d) and (e) stand beside figures
        # listed already.
        baseline_total = sides.get("baseline", {}).get(TOTAL)
        if baseline_total is not None and scenario not in REPEATED_BASELINES:
            yield Figure(
                f"cpu.{scenario}.baseline.{TOTAL}", f"{name}: baseline total, CPU ms/1k", baseline_total, None
            )


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_throughput(summary: dict[str, Any]) -> list[str]:
    pub, ing, lat, rep, fleet = (
        summary["publisher"],
        summary["handler_ingest"],
        summary["latency"],
        summary["replicas"],
        summary["fleet_ingest"],
    )
    rows = [
        ("measurement", "project", "baseline (same run)", "ratio", "target"),
        (
            "(a) publisher, queue pre-filled, msgs/s",
            f"{pub['project']:,.0f}",
            f"{pub['baseline']:,.0f} raw aiomqtt, 100 in flight",
            f"{pub['ratio']:.0%}",
            f">= {TARGETS['publisher']:.0%} {_met(pub['ratio'] >= TARGETS['publisher'])}",
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
            f">= {TARGETS['handler_ingest']:.0%} {_met(ing['ratio'] >= TARGETS['handler_ingest'])}",
        ),
        (
            f"(c) device -> WebSocket at {lat['rate']:,.0f} msgs/s, p50 / p99 ms",
            f"{lat['ws_p50_ms']:.1f} / {lat['ws_p99_ms']:.1f}",
            f"{lat['raw_p50_ms']:.1f} / {lat['raw_p99_ms']:.1f} raw MQTT subscriber",
            "",
            f"p99 < {TARGETS['latency_p99_ms']:.0f} {_met(lat['ws_p99_ms'] < TARGETS['latency_p99_ms'])}",
        ),
        (
            "(d) ingest with 2 handler replicas, msgs/s",
            f"{rep['two']:,.0f}",
            f"{rep['one']:,.0f} with 1 replica",
            f"{rep['ratio']:.2f}x",
            "",
        ),
        (
            f"(e) ingest, {fleet['devices']:,.0f} devices all sending, msgs/s",
            f"{fleet['project']:,.0f}",
            f"{fleet['baseline']:,.0f} (b), 4 devices",
            f"{fleet['ratio']:.0%}",
            f">= {TARGETS['fleet_ingest']:.0%} {_met(fleet['ratio'] >= TARGETS['fleet_ingest'])}",
        ),
    ]
    sockets = summary.get("fleet_websockets")
    if sockets:
        p99 = max(sockets["owner_p99_ms"], sockets["staff_p99_ms"])
        met = p99 < TARGETS["sockets_p99_ms"] and sockets["lost"] == 0 and sockets["misrouted"] == 0
        rows.append(
            (
                f"(f) {sockets['sockets']:,.0f} sockets at {sockets['rate']:,.0f} msgs/s, p50 / p99 ms",
                f"owners {sockets['owner_p50_ms']:.1f} / {sockets['owner_p99_ms']:.1f}, "
                f"staff {sockets['staff_p50_ms']:.1f} / {sockets['staff_p99_ms']:.1f}",
                f"lost {sockets['lost']:,.0f}, on another owner's socket {sockets['misrouted']:,.0f}",
                "",
                f"p99 < {TARGETS['sockets_p99_ms']:.0f}, none lost {_met(met)}",
            )
        )
    connecting = summary.get("fleet_connect")
    if connecting:
        limit = connecting["connect_seconds"] + TARGETS["connect_slack_s"]
        slowest = max(connecting["database_s"], connecting["socket_s"])
        complete = (
            min(connecting["online_in_database"], connecting["online_on_socket"]) >= connecting["devices"]
        )
        rows.append(
            (
                f"(g) {connecting['devices']:,.0f} devices connecting over "
                f"{connecting['connect_seconds']:g} s, all online after, s",
                f"database {connecting['database_s']:.2f}, staff socket {connecting['socket_s']:.2f}",
                f"online {connecting['online_in_database']:,.0f} / {connecting['online_on_socket']:,.0f}",
                "",
                f"<= {limit:g} {_met(complete and slowest <= limit)}",
            )
        )
    return _table(rows)


def format_cpu(cpu: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """One block per path: each process group's CPU ms per 1,000 messages, project beside baseline."""
    rows: list[tuple[str, ...]] = [("path, vs its baseline", "process", "project", "baseline")]
    for scenario, sides in cpu.items():
        label, baseline = CPU_SCENARIOS.get(scenario, (scenario, ""))
        project, base = sides.get("project", {}), sides.get("baseline", {})
        groups = [group for group in dict.fromkeys([*project, *base]) if group != TOTAL] + [TOTAL]
        for index, group in enumerate(groups):
            first = (label, f"vs {baseline}") if baseline else (label,)
            rows.append(
                (
                    first[index] if index < len(first) else "",
                    group.replace("_", " "),
                    f"{project[group]:,.1f}" if group in project else "-",
                    f"{base[group]:,.1f}" if group in base else "-",
                )
            )
    return _table(rows)


def format_table(summary: dict[str, Any], runs: int, machine: dict[str, Any]) -> str:
    lines = [
        format_machine(machine),
        f"Medians of {runs} run(s); each ratio is the median of per-run ratios.",
        *format_throughput(summary),
    ]
    if summary.get("cpu"):
        lines += [
            "",
            "CPU time (user + system) per 1,000 messages, ms, medians; (c) shares broker and feed with its "
            "baseline.",
            *format_cpu(summary["cpu"]),
        ]
    return "\n".join(lines)
