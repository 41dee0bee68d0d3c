"""CPU time of processes, read from /proc (Linux), and the machine a benchmark ran on.

A process's CPU time (user + system, all its threads) is counted by the kernel whatever else the machine
runs, so CPU per message stays comparable between a quiet and a busy machine where throughput does not.
Only /proc is read: the benchmark never signals a process it did not start.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> float:
    """CPU seconds (utime + stime) from the text of /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may itself hold spaces or parentheses, so the fields
    are counted from its last closing parenthesis: utime and stime are fields 14 and 15 of the line.
    """
    _, _, rest = text.rpartition(")")
    fields = rest.split()
    if len(fields) < 13:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    # rest starts at field 3 (state): utime is field 14, i.e. index 11 here.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_cpu(pid: int) -> float | None:
    """CPU seconds a running process has used so far; None once it is gone (or not readable)."""
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError):
        return None


def ms_per_thousand(seconds: float, messages: int) -> float:
    """CPU milliseconds per 1,000 messages."""
    return seconds * 1e6 / messages


@dataclass
class CpuWindow:
    """CPU used by groups of processes between start() and stop().

    `groups` maps a group name to a function listing its pids, called at both ends: a pid that appears
    during the window (a new Postgres backend) counts from zero; one that ends inside it is not counted.
    Processes that exit before stop() (traffic processes, mosquitto_pub) report their own CPU: add() it.
    """

    groups: dict[str, Callable[[], Iterable[int]]]
    before: dict[str, dict[int, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, dict[int, float]]:
        samples: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            samples[name] = {}
            for pid in pids():
                value = process_cpu(pid)
                if value is not None:
                    samples[name][pid] = value
        return samples

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> None:
        for name, after in self._sample().items():
            before = self.before.get(name, {})
            used = sum(value - before.get(pid, 0.0) for pid, value in after.items())
            self.add(name, used)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def per_thousand(self, messages: int) -> dict[str, float]:
        return {name: ms_per_thousand(value, messages) for name, value in self.seconds.items()}


def cpu_model(cpuinfo: str) -> str:
    """The processor's name from the text of /proc/cpuinfo (x86 `model name`, some ARM `Hardware`/`Model`)."""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in cpuinfo.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    """What a figure was measured on: cores, CPU model, load average when the run started, Python."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(cpuinfo),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "platform": sys.platform,
    }


def format_machine(info: dict[str, object]) -> str:
    load = info.get("load_average_at_start") or []
    load_text = " / ".join(f"{value:.2f}" for value in load) if isinstance(load, list) else "?"
    return (
        f"Machine: {info.get('cores', '?')} cores, {info.get('cpu_model', '?')}, load average at start "
        f"{load_text} (1/5/15 min), Python {info.get('python', '?')}"
    )
