"""Per-message cost of the handler's payload checks (apps/mqtt_service/payloads.py), in microseconds.

    <baked project>/.venv/bin/python bench/payload_checks.py <baked project>

Compares, over 10,000 payloads of each shape (best of 5 timeit runs): what parsing cost before the checks
(decode + json.loads with the NaN/Infinity hook, a decoder built per call), parse_payload, and json.loads
followed by the full walk every payload would pay without the raw-byte pre-checks. Prints figures only.
"""

from __future__ import annotations

import json
import random
import sys
import timeit
from pathlib import Path

RUNS = 5


def _refuse(name: str) -> float:
    raise ValueError(name)


def main(project: Path) -> None:
    sys.path.insert(0, str(project / "src"))
    from apps.mqtt_service.payloads import MAX_DEPTH, find_problem, parse_payload

    rng = random.Random(1)

    def telemetry(i: int) -> dict:
        return {
            "seq": i,
            "battery": rng.randint(0, 100),
            "temp": round(rng.uniform(-20, 40), 2),
            "rssi": -rng.randint(30, 90),
            "door": rng.choice(["open", "closed"]),
            "ts": 1764430000 + i,
            "fw": "1.4.2",
            "loc": {"lat": round(41.3 + rng.random() / 100, 6), "lon": round(69.2 + rng.random() / 100, 6)},
        }

    shapes = {
        "telemetry (~190 B)": [json.dumps(telemetry(i)).encode() for i in range(10_000)],
        "same with a \\u escape (walked)": [
            json.dumps({**telemetry(i), "note": "caf\u00e9"}).encode() for i in range(10_000)
        ],
        "20 samples (~3 KB, walked)": [
            json.dumps({"samples": [telemetry(i) for i in range(20)]}).encode() for _ in range(2_000)
        ],
    }

    def before(items: list[bytes]) -> None:
        for raw in items:
            json.loads(raw.decode("utf-8"), parse_constant=_refuse)

    def checked(items: list[bytes]) -> None:
        for raw in items:
            parse_payload(raw)

    def walked(items: list[bytes]) -> None:
        for raw in items:
            find_problem(json.loads(raw.decode("utf-8"), parse_constant=_refuse), MAX_DEPTH)

    print(f"{'payload':32s} {'before':>8s} {'parse_payload':>14s} {'loads+walk':>11s}  (us per message)")
    for name, items in shapes.items():
        figures = [
            min(timeit.repeat(lambda fn=fn, items=items: fn(items), number=1, repeat=RUNS)) / len(items) * 1e6
            for fn in (before, checked, walked)
        ]
        print(f"{name:32s} {figures[0]:8.2f} {figures[1]:14.2f} {figures[2]:11.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve())
