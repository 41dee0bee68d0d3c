"""Traffic processes of the benchmark, each separate so it does not share an event loop with the
thing it measures: `python traffic.py <role> --spec '<json>'`.

Each prints `READY` once it is connected, then one JSON line with its figures, and exits. Times are
`time.time()` (one machine, one clock), so the orchestrator can compare them across processes. Every result
carries `cpu`: the CPU seconds the process used between READY and its result (its work, not its start-up).
Every loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
from mqtt_packets import connect_packet, publish_packet, read_packets

# aiomqtt warns about every batch of pending publishes; 100 in flight is the point here.
QUIET = logging.getLogger("bench.mqtt")
QUIET.setLevel(logging.ERROR)


def mqtt_client(spec: dict[str, Any], **options: Any) -> aiomqtt.Client:
    """Same transport as the project's services (MQTT 5, TCP_NODELAY), so baselines compare like with like."""
    return aiomqtt.Client(
        "127.0.0.1",
        spec["port"],
        identifier=spec["client_id"],
        protocol=aiomqtt.ProtocolVersion.V5,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        logger=QUIET,
        **options,
    )


_cpu_at_ready = 0.0


def ready() -> None:
    global _cpu_at_ready
    _cpu_at_ready = time.process_time()
    sys.stdout.write("READY\n")
    sys.stdout.flush()


def done(result: dict[str, Any]) -> None:
    result["cpu"] = time.process_time() - _cpu_at_ready
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


async def wait_for_go(spec: dict[str, Any]) -> None:
    """Block until the orchestrator writes a line on stdin (so all traffic starts together)."""
    if spec.get("wait_for_go"):
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def subscribe_count(spec: dict[str, Any]) -> None:
    """Count messages on `topic`; with `latency`, also collect now - payload["ts"] per message."""
    count, deadline = spec["count"], time.time() + spec["timeout"]
    latencies: list[float] = []
    received, first, last = 0, None, None
    async with mqtt_client(spec) as client:
        await client.subscribe(spec["topic"], qos=spec.get("qos", 1))
        ready()

        async def consume() -> None:
            nonlocal received, first, last
            async for message in client.messages:
                now = time.time()
                first = first or now
                last = now
                received += 1
                if spec.get("latency"):
                    latencies.append(now - json.loads(message.payload)["ts"])
                if received >= count:
                    return

        try:
            await asyncio.wait_for(consume(), max(1.0, deadline - time.time()))
        except TimeoutError:
            pass
    done({"received": received, "first": first, "last": last, "latencies": latencies})


async def in_lanes(send: Callable[[int], Awaitable[None]], count: int, lanes: int, timeout: float) -> int:
    """Call `send(1..count)` with `lanes` calls awaited concurrently; returns how many were sent."""
    sent = 0

    async def lane() -> None:
        nonlocal sent
        while sent < count:
            sent += 1
            await send(sent)

    await asyncio.wait_for(asyncio.gather(*(lane() for _ in range(lanes))), timeout)
    return sent


async def raw_publish(spec: dict[str, Any]) -> None:
    """The baseline publisher: one aiomqtt connection, QoS 1, `inflight` publishes awaited concurrently."""
    count, inflight = spec["count"], spec["inflight"]
    payload = json.dumps({"n": 0, "pad": "x" * 40}).encode()
    async with mqtt_client(spec, max_inflight_messages=inflight) as client:
        ready()
        await wait_for_go(spec)
        start = time.time()

        async def send(_: int) -> None:
            await client.publish(spec["topic"], payload, qos=1)

        sent = await in_lanes(send, count, inflight, spec["timeout"])
        done({"start": start, "end": time.time(), "sent": sent})


async def paced_publish(spec: dict[str, Any]) -> None:
    """A fixed rate (msgs/s) for a fixed time, round-robin over `topics` (or the lines of `topics_file`);
    payload carries the send time."""
    rate, seconds = spec["rate"], spec["seconds"]
    topics = spec.get("topics") or Path(spec["topics_file"]).read_text().split()
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    total = int(rate * seconds)
    async with mqtt_client(spec, max_inflight_messages=1000) as client:
        ready()
        await wait_for_go(spec)
        start = time.time()
        pending: set[asyncio.Task[None]] = set()
        sent = 0
        while sent < total:
            for _ in range(min(per_tick, total - sent)):
                body = json.dumps({"seq": sent, "ts": time.time()}).encode()
                task = asyncio.create_task(client.publish(topics[sent % len(topics)], body, qos=1))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            # Sleep to the next tick of the schedule, not a fixed interval, so lateness does not add up.
            next_tick = start + (sent / per_tick) * tick
            await asyncio.sleep(max(0.0, next_tick - time.time()))
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending), 30)
        done({"start": start, "end": time.time(), "sent": sent})


async def enqueue(spec: dict[str, Any]) -> None:
    """Commands through the project's own API: mqtt_publisher.apublish -> Redis stream."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from apps.mqtt_service.mqtt_publisher import mqtt_publisher

    count, lanes = spec["count"], spec["concurrency"]
    ready()
    await wait_for_go(spec)
    start = time.time()

    async def send(n: int) -> None:
        await mqtt_publisher.apublish(topic=spec["topic"], payload={"n": n, "pad": "x" * 30})

    sent = await in_lanes(send, count, lanes, spec["timeout"])
    done({"start": start, "end": time.time(), "sent": sent})


async def ws_listen(spec: dict[str, Any]) -> None:
    """A signed-in browser: counts distinct device events (a duplicate frame is counted apart);
    with `latency`, now - data["ts"] per event."""
    import websockets

    count, deadline = spec["count"], time.time() + spec["timeout"]
    latencies: list[float] = []
    received, duplicates, first, last = 0, 0, None, None
    seen: set[tuple[str, int]] = set()
    async with websockets.connect(
        spec["url"], origin=spec["origin"], additional_headers={"Cookie": spec["cookie"]}, max_queue=None
    ) as socket_:
        ready()

        async def consume() -> None:
            nonlocal received, duplicates, first, last
            async for frame in socket_:
                event = json.loads(frame)
                if not str(event.get("type", "")).startswith("device."):
                    continue
                key = (event["device"], event["data"]["seq"])
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                now = time.time()
                first = first or now
                last = now
                received += 1
                if spec.get("latency"):
                    latencies.append(now - event["data"]["ts"])
                if received >= count:
                    return

        try:
            await asyncio.wait_for(consume(), max(1.0, deadline - time.time()))
        except TimeoutError:
            pass
    done(
        {
            "received": received,
            "duplicates": duplicates,
            "first": first,
            "last": last,
            "latencies": latencies,
        }
    )


async def ws_presence(spec: dict[str, Any]) -> None:
    """A signed-in staff browser watching a fleet come online: the time at which `count` distinct devices
    whose username starts with `prefix` have been announced online (`device.presence`)."""
    import websockets

    count, prefix, deadline = spec["count"], spec["prefix"], time.time() + spec["timeout"]
    online: set[str] = set()
    all_online_at = None
    async with websockets.connect(
        spec["url"], origin=spec["origin"], additional_headers={"Cookie": spec["cookie"]}, max_queue=None
    ) as socket_:
        ready()

        async def consume() -> None:
            nonlocal all_online_at
            async for frame in socket_:
                event = json.loads(frame)
                if event.get("type") != "device.presence" or not str(event.get("device")).startswith(prefix):
                    continue
                if event.get("online") is True:
                    online.add(event["device"])
                    if len(online) >= count:
                        all_online_at = time.time()
                        return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consume(), max(1.0, deadline - time.time()))
    done({"online": len(online), "all_online_at": all_online_at})


async def ws_fleet(spec: dict[str, Any]) -> None:
    """Many signed-in browsers at once: one socket per owner of `owners_file` plus a staff socket. Counts,
    per side, the distinct device events that arrived and their delivery times (now - data["ts"]), and the
    events an owner got for a device that is not theirs. Done when the staff socket and the owners together
    have `count` events each, or at the deadline."""
    import websockets

    owners = json.loads(Path(spec["owners_file"]).read_text())["owners"]
    count, deadline = spec["count"], time.time() + spec["timeout"]
    received = {"owners": 0, "staff": 0}
    latencies: dict[str, list[float]] = {"owners": [], "staff": []}
    seen: dict[str, set[tuple[str, int]]] = {"owners": set(), "staff": set()}
    duplicates = misrouted = 0
    finished = asyncio.Event()
    opening = asyncio.Semaphore(spec.get("concurrent_handshakes", 50))

    async def connect(cookie: str) -> Any:
        async with opening:
            return await websockets.connect(
                spec["url"], origin=spec["origin"], additional_headers={"Cookie": cookie}, max_queue=None
            )

    async def consume(socket_: Any, side: str, devices: frozenset[str] | None) -> None:
        nonlocal duplicates, misrouted
        async for frame in socket_:
            now = time.time()
            event = json.loads(frame)
            if not str(event.get("type", "")).startswith("device."):
                continue
            if devices is not None and event["device"] not in devices:
                misrouted += 1
                continue
            key = (event["device"], event["data"]["seq"])
            if key in seen[side]:
                duplicates += 1
                continue
            seen[side].add(key)
            received[side] += 1
            latencies[side].append(now - event["data"]["ts"])
            if received["owners"] >= count and received["staff"] >= count:
                finished.set()

    sockets = await asyncio.gather(*(connect(owner["cookie"]) for owner in owners))
    staff = await connect(spec["staff_cookie"])
    readers = [
        asyncio.create_task(consume(socket_, "owners", frozenset(owner["devices"])))
        for socket_, owner in zip(sockets, owners, strict=True)
    ]
    readers.append(asyncio.create_task(consume(staff, "staff", None)))
    ready()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), max(1.0, deadline - time.time()))
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(socket_.close() for socket_ in [*sockets, staff]), return_exceptions=True)
    done(
        {
            "sockets": len(sockets) + 1,
            "owners_received": received["owners"],
            "staff_received": received["staff"],
            "duplicates": duplicates,
            "misrouted": misrouted,
            "owner_latencies": latencies["owners"],
            "staff_latencies": latencies["staff"],
        }
    )


def spread_publish(spec: dict[str, Any]) -> None:
    """A full-speed QoS 1 feed spread over many topics (one per line of `topics_file`, taken in turn), at
    most `inflight` unacknowledged. mosquitto_pub sends to one topic only; an MQTT client library spends
    several times its CPU per message, which would take cores from the path measured. So the packets are
    built before the clock starts and written in batches, like mosquitto_pub's lines, on one socket."""
    topics = Path(spec["topics_file"]).read_text().split()
    count, inflight = spec["count"], spec["inflight"]
    packets = [
        publish_packet(topics[i % len(topics)], i % 65535 + 1, json.dumps({"seq": i, "ts": 0}).encode())
        for i in range(count)
    ]
    deadline = time.time() + 30
    sock = socket.create_connection(("127.0.0.1", spec["port"]), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    sock.sendall(connect_packet(spec["client_id"]))
    while not (connack := read_packets(buffer)) and time.time() < deadline:
        buffer += sock.recv(65536)
    if not connack or connack[0][0] != 0x20 or connack[0][1][1] != 0:
        raise SystemExit(f"spread-publish: connection refused: {connack!r}")
    ready()
    if spec.get("wait_for_go"):
        sys.stdin.readline()
    start = time.time()
    stop_at = start + spec["timeout"]
    sock.settimeout(max(1.0, spec["timeout"]))
    sent = acked = refused = 0
    try:
        while acked + refused < count and time.time() < stop_at:
            window = min(count, acked + refused + inflight)
            if sent < window:
                sock.sendall(b"".join(packets[sent:window]))
                sent = window
            data = sock.recv(65536)
            if not data:
                break
            buffer += data
            for first, body in read_packets(buffer):
                if first >> 4 == 4:  # PUBACK; a reason code >= 0x80 is a refusal
                    if len(body) > 2 and body[2] >= 0x80:
                        refused += 1
                    else:
                        acked += 1
    except TimeoutError:
        pass
    end = time.time()
    with contextlib.suppress(OSError):
        sock.sendall(bytes([0xE0, 0]))  # DISCONNECT, normal
    sock.close()
    done({"start": start, "end": end, "sent": sent, "acked": acked, "refused": refused})


ROLES = {
    "subscribe-count": subscribe_count,
    "raw-publish": raw_publish,
    "paced-publish": paced_publish,
    "enqueue": enqueue,
    "ws-listen": ws_listen,
    "ws-fleet": ws_fleet,
    "ws-presence": ws_presence,
    "spread-publish": spread_publish,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--spec", required=True, help="JSON object with the role's parameters")
    args = parser.parse_args()
    run = ROLES[args.role](json.loads(args.spec))
    if asyncio.iscoroutine(run):
        asyncio.run(run)


if __name__ == "__main__":
    main()
