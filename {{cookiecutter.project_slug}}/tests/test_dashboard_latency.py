"""How long a device that connects takes to show as online on a signed-in user's fleet page: from just before
its MQTT CONNECT to the moment the browser sets its badge, for each of 100 devices (p50 / p99 printed).

A measurement, not a timed assertion (the figure depends on the machine); it fails only when a device never
shows as online. Run it alone: `.venv/bin/pytest -s -m slow tests/test_dashboard_latency.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import statistics
import time
import uuid
from pathlib import Path

import aiomqtt
import pytest
from django.db import connection

from apps.devices.models import Device
from apps.mqtt_service import topology
from browser import WAIT, sign_in, start_chromium, wait_for
from live_stack import live_stack
from mqtt_helpers import mqtt_address

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEVICES = 100
CONNECTS_PER_SECOND = 20  # a steady arrival, as devices of a fleet come back after an outage
PASSWORD = "a latency test password"

# Records, per device, when the page first showed it online (the browser's clock, which is this machine's).
RECORD_ONLINE = """
window.onlineAt = {};
new MutationObserver(function (mutations) {
  const now = Date.now();
  mutations.forEach(function (mutation) {
    const row = mutation.target;
    const name = row.dataset.device;
    if (row.matches("tr[data-device]") && row.dataset.online === "true" && !(name in onlineAt)) {
      onlineAt[name] = now;
    }
  });
}).observe(
  document.getElementById("fleet"), {subtree: true, attributes: true, attributeFilter: ["data-online"]}
);
"""


async def connect_devices(usernames: list[str], stack: contextlib.AsyncExitStack) -> dict[str, float]:
    """Connect each device as the device contract says (Last Will, then presence online); returns the wall
    clock time just before each CONNECT."""
    host, port = mqtt_address()
    started: dict[str, float] = {}
    for username in usernames:
        topic = f"{topology.DEVICE_TOPIC_PREFIX}/{username}/{topology.PRESENCE_KIND}"
        token = secrets.token_hex(8)
        client = aiomqtt.Client(
            host,
            port,
            identifier=username,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(topic, json.dumps({"online": False, "conn": token}), qos=1),
        )
        started[username] = time.time()
        await stack.enter_async_context(client)
        await client.publish(topic, json.dumps({"online": True, "conn": token}), qos=1)
        await asyncio.sleep(1 / CONNECTS_PER_SECOND)
    return started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def test_connect_to_online_badge_latency(django_user_model, tmp_path: Path) -> None:
    user = django_user_model.objects.create_user(
        username=f"watcher-{uuid.uuid4().hex[:8]}", password=PASSWORD
    )
    prefix = f"lat{uuid.uuid4().hex[:6]}"
    usernames = [f"{prefix}-{number:04d}" for number in range(1, DEVICES + 1)]
    Device.objects.bulk_create(Device(username=username, owner=user) for username in usernames)

    with live_stack(connection.settings_dict["NAME"], tmp_path) as backend:
        driver = start_chromium()
        try:
            backend.wait_ready()
            sign_in(driver, backend.url, user.username, PASSWORD)
            driver.execute_script(RECORD_ONLINE)

            async def measure() -> tuple[dict[str, float], dict[str, int]]:
                async with contextlib.AsyncExitStack() as devices:
                    started = await connect_devices(usernames, devices)
                    online = await asyncio.to_thread(
                        wait_for,
                        driver,
                        f"{DEVICES} badges to say online",
                        lambda: (
                            (seen := driver.execute_script("return onlineAt;"))
                            and len(seen) == DEVICES
                            and seen
                        ),
                        WAIT * 2,
                    )
                    return started, online

            started, online = asyncio.run(measure())
        finally:
            driver.quit()

    latencies = [online[username] / 1000 - started[username] for username in usernames]
    print(
        f"\nconnect -> online badge, {DEVICES} devices at {CONNECTS_PER_SECOND}/s: "
        f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms, mean {statistics.mean(latencies) * 1000:.0f} ms"
    )
