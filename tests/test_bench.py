"""The benchmark's own logic, without services: CPU times from /proc, the printed tables and compare.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import cpu  # noqa: E402
import mqtt_packets  # noqa: E402
import report  # noqa: E402

MACHINE = {
    "cores": 2,
    "cpu_model": "Test CPU 9000",
    "load_average_at_start": [1.5, 0.75, 0.25],
    "python": "3.11.7",
}

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        sum(range(1000))


def test_parse_stat_reads_utime_and_stime_after_the_last_parenthesis() -> None:
    # A command name may hold spaces and parentheses; utime and stime are fields 14 and 15.
    fields = " ".join(["S", *["0"] * 10, "250", "50", *["0"] * 30])
    assert cpu.parse_stat(f"4242 (a (b) c)) {fields}") == 300 / cpu.CLOCK_TICKS


def test_parse_stat_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="not a /proc"):
        cpu.parse_stat("4242 (x) S 1 2")


def test_process_cpu_of_this_process_follows_its_own_clock() -> None:
    burn(0.2)
    ours, measured = time.process_time(), cpu.process_cpu(os.getpid())
    assert measured is not None
    # /proc counts in clock ticks (1/100 s on most kernels): allow a few.
    assert abs(measured - ours) < 5 / cpu.CLOCK_TICKS + 0.02


def test_process_cpu_of_a_finished_process_is_none() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert cpu.process_cpu(int(child.stdout)) is None


def test_cpu_window_counts_what_was_used_inside_it_and_what_was_added() -> None:
    burn(0.1)
    window = cpu.CpuWindow({"self": lambda: [os.getpid()], "gone": lambda: [2**22 + 1]})
    window.start()
    burn(0.3)
    window.stop()
    window.add("feed", 0.5)
    assert 0.3 - 3 / cpu.CLOCK_TICKS <= window.seconds["self"] < 1.0
    assert window.seconds["gone"] == 0
    assert window.per_thousand(2000)["feed"] == pytest.approx(250.0)


def test_cpu_model_reads_proc_cpuinfo_text() -> None:
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\n"
    assert cpu.cpu_model(text) == "AMD EPYC 7B13"
    assert cpu.cpu_model("processor : 0\nHardware : BCM2835\n") == "BCM2835"


def test_machine_describes_this_machine() -> None:
    info = cpu.machine()
    assert info["cores"] == os.cpu_count()
    assert len(info["load_average_at_start"]) == 3
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["cpu_model"]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
    ],
)
def test_varint_matches_the_mqtt_specification_examples(value: int, encoded: bytes) -> None:
    assert mqtt_packets.varint(value) == encoded


def test_packets_read_back_whole_and_a_partial_one_waits() -> None:
    long_payload = b"x" * 300  # a two-byte remaining length
    stream = mqtt_packets.publish_packet("d/dev1/event", 7, b"{}") + mqtt_packets.publish_packet(
        "d/dev2/status", 65535, long_payload
    )
    buffer = bytearray(stream[:-1])
    first = mqtt_packets.read_packets(buffer)
    assert [packet[0] for packet in first] == [0x32]  # QoS 1 PUBLISH; the second is not complete yet
    assert first[0][1] == b"\x00\x0cd/dev1/event\x00\x07\x00{}"
    buffer += stream[-1:]
    (second,) = mqtt_packets.read_packets(buffer)
    assert second[1].endswith(b"\xff\xff\x00" + long_payload)
    assert buffer == b""


def test_connect_packet_asks_for_mqtt_5_with_a_clean_start() -> None:
    packet = mqtt_packets.connect_packet("bench-feed")
    assert packet[:2] == b"\x10" + bytes([len(packet) - 2])
    assert packet[2:10] == b"\x00\x04MQTT\x05\x02"
    assert packet.endswith(b"\x00\x0abench-feed")


def make_run(scale: float = 1.0, cpu_scale: float = 1.0) -> dict[str, Any]:
    """One run as measure.py records it; `scale` multiplies the rates, `cpu_scale` the project's CPU."""

    def project_cpu(handler: float) -> dict[str, float]:
        return {
            "broker": 40.0 * cpu_scale,
            "handler_service": handler * cpu_scale,
            "uvicorn": 90.0 * cpu_scale,
            "redis": 30.0 * cpu_scale,
            "postgres": 25.0 * cpu_scale,
            "feed": 10.0,
            "websocket_client": 35.0,
        }

    raw = {"broker": 35.0, "feed": 10.0, "raw_subscriber": 60.0}
    publisher = {"broker": 30.0, "publisher_service": 80.0 * cpu_scale, "redis": 20.0, "producer": 70.0}
    raw_publisher = {"broker": 30.0, "raw_publisher": 90.0, "subscriber": 60.0}
    return {
        "publisher": {
            "project": 5000 * scale,
            "baseline": 6000,
            "project_live_producer": 4000 * scale,
            "project_enqueue_only": 9000,
            "baseline_send_only": 7000,
        },
        "handler_ingest": {"project": 3600 * scale, "baseline": 6000},
        "replicas": {"one": 3600 * scale, "two": 4200 * scale},
        "fleet_ingest": {"project": 3400 * scale, "baseline": 3600 * scale, "devices": 10000},
        "latency": {
            "rate": 1000,
            "ws_received": 10000,
            "ws_p50_ms": 8.0 / scale,
            "ws_p99_ms": 40.0 / scale,
            "raw_p50_ms": 2.0,
            "raw_p99_ms": 6.0,
        },
        "fleet_websockets": {
            "rate": 2000,
            "sockets": 1001,
            "sent": 20000,
            "owners_received": 20000,
            "staff_received": 20000,
            "lost": 0,
            "duplicates": 0,
            "misrouted": 0,
            "owner_p50_ms": 12.0 / scale,
            "owner_p99_ms": 60.0 / scale,
            "staff_p50_ms": 13.0 / scale,
            "staff_p99_ms": 70.0 / scale,
        },
        "fleet_connect": {
            "devices": 2000,
            "connect_seconds": 5.0,
            "online_in_database": 2000,
            "online_on_socket": 2000,
            "database_s": 5.2 / scale,
            "socket_s": 5.3 / scale,
        },
        # In the order measure.py records them: (c) first, (b), (d) and (e) when the run ends.
        "cpu": {
            "latency": {"project": project_cpu(170.0), "baseline": raw},
            "publisher": {"project": publisher, "baseline": raw_publisher},
            "publisher_live_producer": {"project": publisher, "baseline": raw_publisher},
            "handler_ingest": {"project": project_cpu(150.0), "baseline": raw},
            "replicas_two": {"project": project_cpu(180.0), "baseline": project_cpu(150.0)},
            "fleet_ingest": {"project": project_cpu(160.0), "baseline": project_cpu(150.0)},
            "fleet_websockets": {"project": project_cpu(200.0), "baseline": {}},
            "fleet_connect": {"project": {"handler_service": 900.0, "simulator": 2500.0}, "baseline": {}},
        },
    }


def test_summary_cpu_is_the_median_per_group_and_of_the_totals() -> None:
    runs = [make_run(cpu_scale=factor) for factor in (1.0, 2.0, 1.2)]
    summary = report.summarize(runs)
    handler = summary["cpu"]["handler_ingest"]
    assert handler["project"]["handler_service"] == pytest.approx(150.0 * 1.2)
    assert handler["project"]["total"] == pytest.approx(
        sum(make_run(cpu_scale=1.2)["cpu"]["handler_ingest"]["project"].values())
    )
    assert handler["baseline"]["total"] == pytest.approx(105.0)
    assert summary["fleet_ingest"]["ratio"] == pytest.approx(3400 / 3600)


def test_table_prints_the_machine_the_fleet_row_and_cpu_per_process() -> None:
    table = report.format_table(report.summarize([make_run()]), 1, MACHINE)
    lines = table.splitlines()
    assert lines[0] == (
        "Machine: 2 cores, Test CPU 9000, load average at start 1.50 / 0.75 / 0.25 (1/5/15 min), "
        "Python 3.11.7"
    )
    assert any(line.startswith("(e) ingest, 10,000 devices all sending") and "94%" in line for line in lines)
    sockets = next(line for line in lines if line.startswith("(f) 1,001 sockets at 2,000 msgs/s"))
    assert "owners 12.0 / 60.0, staff 13.0 / 70.0" in sockets
    assert sockets.endswith("p99 < 100, none lost met")
    connecting = next(line for line in lines if line.startswith("(g) 2,000 devices connecting over 5 s"))
    assert "database 5.20, staff socket 5.30" in connecting
    assert connecting.endswith("<= 6 met")
    # (b): the raw subscriber's path has no handler service.
    assert any(re.search(r"  handler service +150\.0 +-$", line) for line in lines)
    cpu_lines = lines[lines.index(next(line for line in lines if line.startswith("CPU time"))) :]
    totals = [line.split()[-2:] for line in cpu_lines if line.split()[:1] == ["total"]]
    assert ["380.0", "105.0"] in totals  # (b): project total beside the raw subscriber path's
    assert totals[-1][-1] == "-"  # (g): a stated target, no baseline path
    assert len(totals) == len(report.CPU_SCENARIOS)
    paths = [line.split("  ")[0] for line in cpu_lines if line.startswith("(")]
    assert paths == [label for label, _ in report.CPU_SCENARIOS.values()]


def write_result(path: Path, runs: list[dict[str, Any]], machine: dict[str, Any] | None = MACHINE) -> Path:
    data: dict[str, Any] = {"messages": 20000, "runs": runs, "median": report.summarize(runs)}
    if machine is not None:
        data["machine"] = machine
    path.write_text(json.dumps(data))
    return path


def run_compare(old: Path, new: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, str(BENCH / "compare.py"), str(old), str(new)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = {}
    for line in done.stdout.splitlines():
        rows[line.partition("  ")[0].strip()] = line
    return rows


def test_compare_marks_each_change_in_the_direction_that_matters(tmp_path: Path) -> None:
    old = write_result(tmp_path / "old.json", [make_run()])
    new = write_result(tmp_path / "new.json", [make_run(scale=0.5, cpu_scale=0.5)])
    rows = run_compare(old, new)
    ingest = rows["(b) handler ingest, msgs/s"]
    assert ingest.split()[-3:] == ["-1,800", "-50.0%", "worse"]
    assert rows["(c) device -> WebSocket p99, ms"].split()[-1] == "worse"  # latency doubled
    cpu_row = rows["(b) handler ingest: handler service, CPU ms/1k"]
    assert cpu_row.split()[-3:] == ["-75", "-50.0%", "better"]
    # A baseline moving is context, never a regression or an improvement.
    assert rows["(b) raw subscriber baseline, msgs/s"].split()[-1] == "+0.0%"
    assert rows["(b) handler ingest: total, CPU ms/1k"].split()[-1] == "better"
    assert rows["(b) handler ingest: baseline total, CPU ms/1k"].split()[-1] == "+0.0%"


def test_the_sockets_row_misses_its_target_on_a_lost_or_misrouted_event() -> None:
    for figure in ("lost", "misrouted"):
        run = make_run()
        run["fleet_websockets"][figure] = 1
        table = report.format_table(report.summarize([run]), 1, MACHINE)
        assert next(line for line in table.splitlines() if line.startswith("(f)")).endswith("MISSED"), figure
    slow = make_run(scale=0.5)  # staff p99 140 ms
    table = report.format_table(report.summarize([slow]), 1, MACHINE)
    assert next(line for line in table.splitlines() if line.startswith("(f)")).endswith("MISSED")


def test_the_connecting_row_misses_its_target_when_late_or_incomplete() -> None:
    late = make_run(scale=0.8)  # socket after 6.6 s
    incomplete = make_run()
    incomplete["fleet_connect"]["online_on_socket"] = 1999
    for run in (late, incomplete):
        table = report.format_table(report.summarize([run]), 1, MACHINE)
        assert next(line for line in table.splitlines() if line.startswith("(g)")).endswith("MISSED")


def test_compare_lists_a_figure_only_one_side_has(tmp_path: Path) -> None:
    older = make_run()
    del older["fleet_ingest"]
    older["cpu"] = {"handler_ingest": older["cpu"]["handler_ingest"]}
    # An older result: no (e) row, no machine; summarize() of today needs (e), so build its median by hand.
    median = report.summarize([make_run()])
    del median["fleet_ingest"]
    median["cpu"] = {"handler_ingest": median["cpu"]["handler_ingest"]}
    median["cpu"]["handler_ingest"]["project"]["retired_process"] = 5.0
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"messages": 20000, "runs": [older], "median": median}))
    new = write_result(tmp_path / "new.json", [make_run()])
    rows = run_compare(old, new)
    assert rows["(e) ingest, 10,000 devices, msgs/s"].endswith("only in NEW")
    assert rows["(b) handler ingest: retired process, CPU ms/1k"].endswith("only in OLD")
    assert rows["(b) handler ingest, msgs/s"].split()[-2:] == ["+0", "+0.0%"]  # unchanged: unmarked
    assert next(label for label in rows if label.startswith("OLD")).endswith("Machine: not recorded")


def test_compare_refuses_a_file_that_is_not_a_result(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"runs": []}))
    done = subprocess.run(
        [sys.executable, str(BENCH / "compare.py"), str(bogus), str(bogus)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "not a benchmark result" in done.stderr
