"""Plausible readings for simulated devices: values drift like real sensors instead of jumping at random."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from apps.mqtt_service import topology

FIRMWARE = "1.4.2"


@dataclass
class Drift:
    """A value that takes small random steps and stays within its range."""

    value: float
    low: float
    high: float
    step: float

    def next(self, rng: random.Random) -> float:
        self.value = min(self.high, max(self.low, self.value + rng.uniform(-self.step, self.step)))
        return round(self.value, 2)


@dataclass
class Readings:
    """The sensor state of one simulated device."""

    rng: random.Random
    uptime: int = 0
    battery: Drift = field(init=False)
    temperature: Drift = field(init=False)
    humidity: Drift = field(init=False)
    rssi: Drift = field(init=False)

    def __post_init__(self) -> None:
        self.battery = Drift(self.rng.uniform(60, 100), 0, 100, 0.3)
        self.temperature = Drift(self.rng.uniform(18, 26), -20, 60, 0.4)
        self.humidity = Drift(self.rng.uniform(35, 60), 0, 100, 0.8)
        self.rssi = Drift(self.rng.uniform(-80, -50), -110, -30, 1.5)

    def message(self, kind: str, elapsed: float) -> dict[str, Any]:
        """The JSON object a device of this kind would send now."""
        self.uptime = int(elapsed)
        if kind == "status":
            return {
                "battery": self.battery.next(self.rng),
                "rssi": self.rssi.next(self.rng),
                "firmware": FIRMWARE,
                "uptime_s": self.uptime,
            }
        if kind in ("event", "alarm"):
            level = self.rng.choices(["info", "warning", "critical"], weights=[80, 15, 5])[0]
            return {"level": level, "code": self.rng.randint(100, 599), "uptime_s": self.uptime}
        return {
            "temperature": self.temperature.next(self.rng),
            "humidity": self.humidity.next(self.rng),
            "battery": self.battery.next(self.rng),
        }


def kinds_to_send(requested: list[str] | None) -> tuple[str, ...]:
    """The answered kinds, or the requested subset of them (an unknown kind is an error, said plainly)."""
    answered = tuple(topology.DEVICE_MESSAGE_KINDS)
    if not requested:
        return answered
    unknown = [kind for kind in requested if kind not in answered]
    if unknown:
        raise ValueError(f"unknown kinds {unknown}: this project's kinds are {list(answered)}")
    return tuple(requested)
