"""Measures a baked project's MQTT data paths, each figure next to a baseline taken in the same run.

Started by run.py inside a venv that has the project's requirements. It starts its own Mosquitto (free port,
TCP_NODELAY, no per-client queue or in-flight limits), its own Postgres database (dropped at the end) and
uses the local Redis under keys unique to this run (deleted at the end). Traffic goes to 127.0.0.1 only.

Beside each rate it measures the CPU time every process on the path used (cpu.py): the services and traffic
processes it started, its Mosquitto, and, read from /proc only, the Redis server and the Postgres backends of
its database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from cpu import CpuWindow, machine, ms_per_thousand
from report import format_table, summarize

logger = logging.getLogger("bench")
BENCH_DIR = Path(__file__).resolve().parent
TRAFFIC = BENCH_DIR / "traffic.py"
SEED = BENCH_DIR / "seed_data.py"
# Redis logical databases of the generated settings: 3 channel layer, 4 publish queue and metrics.
REDIS_DBS = (3, 4)
# Registered devices of row (e), all sent traffic.
FLEET_DEVICES = 10_000
# Row (f): signed-in users, each with a socket open and this many devices of their own, plus a staff socket;
# the devices send this many messages per second in all, for this long.
SOCKET_OWNERS = 1_000
DEVICES_PER_OWNER = 10
SOCKETS_RATE = 2_000
SOCKETS_SECONDS = 10.0
# Row (g): simulated devices (the project's simulator) connecting over this many seconds.
CONNECTING_DEVICES = 2_000
CONNECTING_SECONDS = 5.0
CONNECTING_PREFIX = "benchsim"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_program(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if found is None:
        raise SystemExit(
            f"{name} is required by the benchmark (e.g. apt-get install mosquitto mosquitto-clients)"
        )
    return found


@dataclass
class TrafficProcess:
    process: asyncio.subprocess.Process
    role: str

    async def result(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        await asyncio.wait_for(self.process.wait(), 10)
        if not line:
            raise RuntimeError(f"traffic {self.role} exited with {self.process.returncode} and no result")
        return json.loads(line)

    async def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()


@dataclass
class Service:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                logger.warning("%s did not stop on SIGTERM; killing it", self.name)
                with contextlib.suppress(ProcessLookupError):  # it may end by itself meanwhile
                    self.process.kill()
                await self.process.wait()


@dataclass
class Bench:
    project: Path
    workdir: Path
    messages: int
    # More registered devices, for row (e); none unless asked (bench/commands.py starts a Bench too).
    fleet: int = 0
    # Users with devices of their own, each with a socket, for row (f); none unless asked.
    owners: int = 0
    tag: str = field(default_factory=lambda: f"bench{secrets.token_hex(4)}")
    broker_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    services: list[Service] = field(default_factory=list)
    seed: dict[str, Any] = field(default_factory=dict)
    counter: int = 0
    redis_pid: int = 0
    # CPU of the current run, ms per 1,000 messages: {scenario: {"project": {group: ms}, "baseline": {...}}}
    cpu: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # One key for every process: session auth hashes are signed with it.
    secret_key: str = field(default_factory=lambda: f"bench-{secrets.token_urlsafe(40)}")

    # --- environment -----------------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_ENV_FILE": str(self.project / "tests" / "test.env"),
                "PYTHONPATH": str(self.project / "src"),
                "DJANGO_SETTINGS_MODULE": "config.settings",
                # Production mode (no query log, no debug toolbar-ish overhead) but plain HTTP on localhost.
                "DJANGO_DEBUG": "False",
                "DJANGO_SECRET_KEY": self.secret_key,
                "DJANGO_SECURE_SSL_REDIRECT": "False",
                "DJANGO_SECURE_COOKIES": "False",
                "DJANGO_SECURE_HSTS_SECONDS": "0",
                "DJANGO_LOG_LEVEL": "INFO",
                "POSTGRES_DB": self.tag,
                "MQTT_BROKER_HOST": "127.0.0.1",
                "MQTT_BROKER_PORT": str(self.broker_port),
                "MQTT_PUBLISH_QUEUE": f"{self.tag}:publish_queue",
                "CHANNEL_LAYER_PREFIX": f"{self.tag}:ws:",
            }
        )
        return env

    def pg_params(self, dbname: str | None = None) -> dict[str, Any]:
        """Connection parameters of the local Postgres: the admin database, or `dbname` (this run's)."""
        return {
            "host": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
            "port": int(os.environ.get("POSTGRES_PORT", "5432")),
            "user": os.environ.get("POSTGRES_USER", "postgres"),
            "password": os.environ.get("POSTGRES_PASSWORD") or None,
            "dbname": dbname or self.env.get("BENCH_ADMIN_DB", "postgres"),
            "autocommit": True,
        }

    def pg_connect(self) -> psycopg.Connection:
        return psycopg.connect(**self.pg_params())

    @property
    def web_origin(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}/ws/connect/"

    @property
    def fleet_topics(self) -> Path:
        return self.workdir / "fleet-topics.txt"

    @property
    def owners_file(self) -> Path:
        return self.workdir / "owners.json"

    @property
    def owners_topics(self) -> Path:
        return self.workdir / "owners-topics.txt"

    def redis_client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(
            host=os.environ.get("REDIS_HOST", "127.0.0.1"),
            port=int(os.environ.get("REDIS_PORT", "6379")),
            password=os.environ.get("REDIS_PASSWORD") or None,
            db=db,
        )

    def postgres_pids(self) -> list[int]:
        """The backends serving this run's database (the admin connection is to another database)."""
        with self.pg_connect() as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.tag,)).fetchall()
        return [pid for (pid,) in rows]

    def window(
        self, *, broker: bool = True, project: bool = False, **services: Callable[[], Iterable[int]]
    ) -> CpuWindow:
        """A CPU window over `services`, the broker, and for the project's path Redis and this run's
        Postgres backends."""
        groups: dict[str, Callable[[], Iterable[int]]] = {}
        if broker:
            groups["broker"] = lambda: [self._service("mosquitto").process.pid]
        groups.update(services)
        if project:
            groups["redis"] = lambda: [self.redis_pid] if self.redis_pid else []
            groups["postgres"] = self.postgres_pids
        return CpuWindow(groups)

    def service_pids(self, *names: str) -> Callable[[], list[int]]:
        return lambda: [service.process.pid for service in self.services if service.name in names]

    def next_id(self, what: str) -> str:
        self.counter += 1
        return f"{self.tag}-{what}-{self.counter}"

    async def run_checked(self, *argv: str) -> str:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.project,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 300)
        if process.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed:\n{err.decode(errors='replace')[-3000:]}")
        return out.decode()

    async def start_service(
        self, name: str, argv: list[str], ready_text: str | None = None, port: int | None = None
    ) -> Service:
        """Start a long-running process; ready when its log shows `ready_text` or `port` accepts."""
        log = self.workdir / f"{name}.log"
        handle = log.open("wb")
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=self.project, env=self.env, stdout=handle, stderr=asyncio.subprocess.STDOUT
        )
        handle.close()
        service = Service(name, process, log)
        self.services.append(service)
        deadline = time.monotonic() + 30
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited early:\n{log.read_text(errors='replace')[-3000:]}")
            if ready_text is not None and ready_text in log.read_text(errors="replace"):
                return service
            if port is not None and await self._port_open(port):
                return service
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after 30 s:\n{log.read_text(errors='replace')[-3000:]}")
            await asyncio.sleep(0.1)

    async def _port_open(self, port: int) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    async def stop_service(self, service: Service) -> None:
        await service.stop()
        self.services.remove(service)

    async def traffic(self, role: str, ready_timeout: float = 30, **spec: Any) -> TrafficProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(TRAFFIC),
            role,
            "--spec",
            json.dumps(spec),
            cwd=self.project,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,  # the result line carries every latency sample
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), ready_timeout)
        if line.strip() != b"READY":
            raise RuntimeError(f"traffic process {role} failed to start (got {line!r})")
        return TrafficProcess(process, role)

    # --- setup and teardown ------------------------------------------------------------------------------
    async def start(self) -> None:
        # The generated project's test broker config (TCP_NODELAY on, per-client queue limit lifted), with a
        # listener and a persistence dir of this run.
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            (self.project / "tests" / "mosquitto.conf").read_text()
            + f"\nlistener {self.broker_port} 127.0.0.1\n"
            + f"persistence_location {self.workdir}/\n"
            + f"user {getpass.getuser()}\n"
            + "log_type error\nlog_type warning\n"
        )
        await self.start_service(
            "mosquitto", [find_program("mosquitto"), "-c", str(conf)], port=self.broker_port
        )
        with self.pg_connect() as conn:
            conn.execute(f'CREATE DATABASE "{self.tag}"')
        python = sys.executable
        await self.run_checked(python, "src/manage.py", "migrate", "--no-input", "-v", "0")
        fleet = ["--fleet", str(self.fleet), "--fleet-topics", str(self.fleet_topics)] if self.fleet else []
        if self.owners:
            fleet += ["--owners", str(self.owners), "--devices-per-owner", str(DEVICES_PER_OWNER)]
            fleet += ["--owners-file", str(self.owners_file)]
        seeded = await self.run_checked(python, str(SEED), "--devices", "8", *fleet)
        self.seed = json.loads(seeded.strip().splitlines()[-1])
        if self.owners:
            topics = json.loads(self.owners_file.read_text())["topics"]
            self.owners_topics.write_text("\n".join(topics) + "\n")
        # Read only: the pid is used to read the server's CPU time from /proc, never to signal it.
        client = self.redis_client()
        self.redis_pid = int(client.info("server")["process_id"])
        client.close()
        if not _is_redis(self.redis_pid):
            logger.warning(
                "Redis (pid %d) is not a process of this machine: its CPU is not counted", self.redis_pid
            )
            self.redis_pid = 0
        await self.start_service(
            "uvicorn",
            [
                str(Path(python).parent / "uvicorn"),
                "config.asgi:application",
                "--app-dir",
                "src",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.web_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            port=self.web_port,
        )
        await self.start_service(
            "publisher",
            [python, "src/manage.py", "run_mqtt_publisher", "--client-id", self.next_id("publisher")],
            ready_text="connected",
        )

    async def stop(self) -> None:
        for service in reversed(list(self.services)):
            await self.stop_service(service)
        with self.pg_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.tag}" WITH (FORCE)')
        for db in REDIS_DBS:
            client = self.redis_client(db)
            keys = list(client.scan_iter(match=f"*{self.tag}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()

    # --- scenarios -----------------------------------------------------------------------------------------
    async def publisher_path(self) -> dict[str, float]:
        """(a) Redis stream -> publisher service -> broker -> subscriber, vs a raw aiomqtt publisher.

        Fair by default: the raw publisher has its messages in memory, so the project's are enqueued first
        (the publisher process paused with SIGSTOP meanwhile) and the clock starts when it resumes. The
        same path with the producer enqueueing concurrently (50 lanes of `mqtt_publisher.apublish`, sharing
        the two cores with the publisher, Redis and the broker) is reported beside it.
        """
        topic, n = self.seed["command_topic"], self.messages
        results: dict[str, float] = {}
        cpu: dict[str, dict[str, float]] = {}
        for name in ("raw", "project", "project_live_producer"):
            sub = await self.traffic(
                "subscribe-count",
                port=self.broker_port,
                client_id=self.next_id("sub"),
                topic=topic,
                count=n,
                timeout=120,
            )
            if name == "raw":
                sender = await self.traffic(
                    "raw-publish",
                    port=self.broker_port,
                    client_id=self.next_id("raw"),
                    topic=topic,
                    count=n,
                    inflight=100,
                    timeout=120,
                    wait_for_go=True,
                )
                window = self.window()
            else:
                sender = await self.traffic(
                    "enqueue", topic=topic, count=n, concurrency=50, timeout=120, wait_for_go=True
                )
                window = self.window(project=True, publisher_service=self.service_pids("publisher"))
            window.start()
            if name == "project":
                publisher = self._service("publisher")
                publisher.process.send_signal(signal.SIGSTOP)
                try:
                    await sender.go()
                    sent = await sender.result(130)
                finally:
                    start = time.time()
                    publisher.process.send_signal(signal.SIGCONT)
            else:
                await sender.go()
                sent = await sender.result(130)
                start = sent["start"]
            got = await sub.result(130)
            window.stop()
            window.add("raw_publisher" if name == "raw" else "producer", sent["cpu"])
            window.add("subscriber", got["cpu"])
            cpu[name] = window.per_thousand(n)
            results[name] = self._rate(got, start, n)
            results[f"{name}_send_only"] = sent["sent"] / (sent["end"] - sent["start"])
        self.cpu["publisher"] = {"project": cpu["project"], "baseline": cpu["raw"]}
        self.cpu["publisher_live_producer"] = {
            "project": cpu["project_live_producer"],
            "baseline": cpu["raw"],
        }
        # send_only: how fast the sender alone went (for the project: enqueueing into Redis), to tell
        # which side limited the end-to-end figure.
        return {
            "project": results["project"],
            "baseline": results["raw"],
            "project_live_producer": results["project_live_producer"],
            "project_enqueue_only": results["project_send_only"],
            "baseline_send_only": results["raw_send_only"],
        }

    def _service(self, name: str) -> Service:
        (service,) = [service for service in self.services if service.name == name]
        return service

    async def _flood(self, total: int) -> tuple[float, float]:
        """Publish `total` messages with several mosquitto_pub connections (C client, QoS 1) at full speed.

        Returns the start time and the CPU seconds the mosquitto_pub processes used (from wait4, as they
        have exited by then)."""
        topics = self.seed["device_topics"]
        other = _other_kind(topics)
        lanes = [topics["event"][0], topics[other][1], topics["event"][2], topics[other][3]]
        per_lane = total // len(lanes)
        files = []
        for index in range(len(lanes)):
            path = self.workdir / f"flood-{index}.txt"
            path.write_text("".join(f'{{"seq": {index * per_lane + i}, "ts": 0}}\n' for i in range(per_lane)))
            files.append(path)
        program = find_program("mosquitto_pub")
        start = time.time()
        pids = []
        for index, topic in enumerate(lanes):
            argv = [program, "-h", "127.0.0.1", "-p", str(self.broker_port), "-V", "mqttv5", "-q", "1"]
            argv += ["-M", "1000", "-i", self.next_id("flood"), "-t", topic, "-l"]
            # posix_spawn + wait4 (not asyncio's subprocess, which reaps the child itself): wait4 returns
            # the child's own resource usage.
            stdin = (os.POSIX_SPAWN_OPEN, 0, str(files[index]), os.O_RDONLY, 0)
            pids.append(os.posix_spawn(program, argv, os.environ, file_actions=[stdin]))
        loop = asyncio.get_running_loop()
        waits = [loop.run_in_executor(None, os.wait4, pid, 0) for pid in pids]
        try:
            reaped = await asyncio.wait_for(asyncio.gather(*waits), 120)
        except TimeoutError:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.gather(*waits, return_exceptions=True)
            raise
        failed = [os.waitstatus_to_exitcode(status) for _, status, _ in reaped if status]
        if failed:
            raise RuntimeError(f"mosquitto_pub exited with {failed}")
        return start, sum(usage.ru_utime + usage.ru_stime for _, _, usage in reaped)

    async def _spread_flood(self, total: int) -> tuple[float, float]:
        """Publish `total` messages at full speed, each to the next fleet device topic (all of them in turn).

        Returns the start time and the feeding process's CPU seconds."""
        feeder = await self.traffic(
            "spread-publish",
            port=self.broker_port,
            client_id=self.next_id("spread"),
            topics_file=str(self.fleet_topics),
            count=total,
            inflight=1000,
            timeout=120,
            wait_for_go=True,
        )
        start = time.time()
        await feeder.go()
        sent = await feeder.result(130)
        if sent["acked"] < total:
            logger.warning("the broker acknowledged only %d of %d fleet messages", sent["acked"], total)
        return start, sent["cpu"]

    async def _handlers(self, replicas: int) -> list[Service]:
        group = self.next_id("group").replace("-", "_")
        started = []
        for _ in range(replicas):
            client_id = self.next_id("handler")
            started.append(
                await self.start_service(
                    client_id,
                    [
                        sys.executable,
                        "src/manage.py",
                        "run_mqtt_handler",
                        "--client-id",
                        client_id,
                        "--shared-group",
                        group,
                        "--session-expiry",
                        "5",
                    ],
                    ready_text="subscribed to",
                )
            )
        return started

    def _ws_spec(self, count: int, timeout: float, latency: bool = False) -> dict[str, Any]:
        return {
            "url": self.ws_url,
            "origin": self.web_origin,
            "cookie": self.seed["cookie"],
            "count": count,
            "timeout": timeout,
            "latency": latency,
        }

    async def handler_ingest(self, replicas: int, spread: bool = False) -> tuple[float, dict[str, float]]:
        """(b)/(d)/(e) built-in handlers (DB writes + WebSocket push to a signed-in socket), full-speed feed:
        four devices (mosquitto_pub), or with `spread` every fleet device in turn. Returns the rate and the
        CPU per 1,000 messages of each process group."""
        n = self.messages // 4 * 4
        handlers = await self._handlers(replicas)
        try:
            socket_ = await self.traffic("ws-listen", **self._ws_spec(n, 180))
            window = self.window(
                project=True,
                handler_service=self.service_pids(*(service.name for service in handlers)),
                uvicorn=self.service_pids("uvicorn"),
            )
            window.start()
            start, feed_cpu = await (self._spread_flood(n) if spread else self._flood(n))
            got = await socket_.result(190)
            window.stop()
            window.add("feed", feed_cpu)
            window.add("websocket_client", got["cpu"])
            if got["duplicates"]:
                logger.warning("WebSocket got %d duplicate frames", got["duplicates"])
            return self._rate(got, start, n), window.per_thousand(n)
        finally:
            for service in handlers:
                await self.stop_service(service)

    async def raw_ingest(self) -> tuple[float, dict[str, float]]:
        n = self.messages // 4 * 4
        prefix = self.seed["device_topics"]["event"][0].rsplit("/", 2)[0]
        sub = await self.traffic(
            "subscribe-count",
            port=self.broker_port,
            client_id=self.next_id("rawsub"),
            topic=f"{prefix}/#",
            count=n,
            timeout=120,
        )
        window = self.window()
        window.start()
        start, feed_cpu = await self._flood(n)
        got = await sub.result(130)
        window.stop()
        window.add("feed", feed_cpu)
        window.add("raw_subscriber", got["cpu"])
        return self._rate(got, start, n), window.per_thousand(n)

    async def latency(self, rate: int = 1000, seconds: float = 10.0) -> dict[str, float]:
        """(c) device -> handler -> WebSocket at a fixed rate; a raw MQTT subscriber on the same feed."""
        topics = [t for kind_topics in self.seed["device_topics"].values() for t in kind_topics]
        total = int(rate * seconds)
        prefix = topics[0].rsplit("/", 2)[0]
        handlers = await self._handlers(1)
        try:
            socket_ = await self.traffic("ws-listen", **self._ws_spec(total, seconds + 60, latency=True))
            raw = await self.traffic(
                "subscribe-count",
                port=self.broker_port,
                client_id=self.next_id("latsub"),
                topic=f"{prefix}/#",
                count=total,
                timeout=seconds + 60,
                latency=True,
            )
            project = self.window(
                broker=False,
                project=True,
                handler_service=self.service_pids(*(service.name for service in handlers)),
                uvicorn=self.service_pids("uvicorn"),
            )
            shared = self.window()
            sender = await self.traffic(
                "paced-publish",
                port=self.broker_port,
                client_id=self.next_id("paced"),
                topics=topics,
                rate=rate,
                seconds=seconds,
                wait_for_go=True,
            )
            project.start()
            shared.start()
            await sender.go()
            sent = await sender.result(seconds + 60)
            ws, mqtt = await socket_.result(seconds + 70), await raw.result(seconds + 70)
            project.stop()
            shared.stop()
        finally:
            for service in handlers:
                await self.stop_service(service)
        achieved = sent["sent"] / (sent["end"] - sent["start"])
        # The baseline subscriber reads the same feed at the same time: broker and feed are shared, so they
        # are counted on both sides.
        shared.add("feed", sent["cpu"])
        project.add("websocket_client", ws["cpu"])
        shared_ms = shared.per_thousand(total)
        self.cpu["latency"] = {
            "project": {**shared_ms, **project.per_thousand(total)},
            "baseline": {**shared_ms, "raw_subscriber": ms_per_thousand(mqtt["cpu"], total)},
        }
        return {
            "rate": achieved,
            "ws_received": ws["received"],
            "ws_p50_ms": _ms(ws["latencies"], 50),
            "ws_p99_ms": _ms(ws["latencies"], 99),
            "raw_p50_ms": _ms(mqtt["latencies"], 50),
            "raw_p99_ms": _ms(mqtt["latencies"], 99),
        }

    async def fleet_websockets(
        self, rate: int = SOCKETS_RATE, seconds: float = SOCKETS_SECONDS
    ) -> dict[str, float]:
        """(f) `owners` signed-in users, each with a socket open and devices of their own, plus a staff
        socket; the owners' devices send `rate` messages/s in all, spread over every device. Every event must
        reach its owner's socket and the staff socket, and no other. Against its stated target: delivery p99
        under 100 ms and nothing lost."""
        total = int(rate * seconds)
        handlers = await self._handlers(1)
        try:
            sockets = await self.traffic(
                "ws-fleet",
                ready_timeout=180,
                url=self.ws_url,
                origin=self.web_origin,
                owners_file=str(self.owners_file),
                staff_cookie=self.seed["cookie"],
                count=total,
                timeout=seconds + 90,
            )
            window = self.window(
                project=True,
                handler_service=self.service_pids(*(service.name for service in handlers)),
                uvicorn=self.service_pids("uvicorn"),
            )
            sender = await self.traffic(
                "paced-publish",
                port=self.broker_port,
                client_id=self.next_id("owners"),
                topics_file=str(self.owners_topics),
                rate=rate,
                seconds=seconds,
                wait_for_go=True,
            )
            window.start()
            await sender.go()
            sent = await sender.result(seconds + 60)
            got = await sockets.result(seconds + 100)
            window.stop()
        finally:
            for service in handlers:
                await self.stop_service(service)
        window.add("feed", sent["cpu"])
        window.add("websocket_clients", got["cpu"])
        self.cpu["fleet_websockets"] = {"project": window.per_thousand(total), "baseline": {}}
        lost = 2 * sent["sent"] - got["owners_received"] - got["staff_received"]
        return {
            "rate": sent["sent"] / (sent["end"] - sent["start"]),
            "sockets": got["sockets"],
            "sent": sent["sent"],
            "owners_received": got["owners_received"],
            "staff_received": got["staff_received"],
            "lost": lost,
            "duplicates": got["duplicates"],
            "misrouted": got["misrouted"],
            "owner_p50_ms": _ms(got["owner_latencies"], 50),
            "owner_p99_ms": _ms(got["owner_latencies"], 99),
            "staff_p50_ms": _ms(got["staff_latencies"], 50),
            "staff_p99_ms": _ms(got["staff_latencies"], 99),
        }

    async def fleet_connect(
        self, devices: int = CONNECTING_DEVICES, seconds: float = CONNECTING_SECONDS
    ) -> dict[str, float]:
        """(g) The project's simulator connects `devices` devices over `seconds` (each announces itself
        online, as the device contract asks): how long from its first connection until all of them are
        online in the database and on a staff socket. Stated target: within a second of the last
        connection."""
        handlers = await self._handlers(1)
        await self._set_offline(CONNECTING_PREFIX)
        try:
            watcher = await self.traffic(
                "ws-presence",
                url=self.ws_url,
                origin=self.web_origin,
                cookie=self.seed["cookie"],
                count=devices,
                prefix=f"{CONNECTING_PREFIX}-",
                timeout=seconds + 120,
            )
            window = self.window(
                project=True,
                handler_service=self.service_pids(*(service.name for service in handlers)),
                uvicorn=self.service_pids("uvicorn"),
                simulator=self.service_pids("simulator"),
            )
            window.start()
            simulator, started = await self._start_simulator(devices, devices / seconds)
            try:
                in_database = await self._wait_online(CONNECTING_PREFIX, devices, started + seconds + 120)
                seen = await watcher.result(seconds + 130)
            finally:
                window.stop()
                await self.stop_service(simulator)
        finally:
            for service in handlers:
                await self.stop_service(service)
        self.cpu["fleet_connect"] = {"project": window.per_thousand(devices), "baseline": {}}
        return {
            "devices": devices,
            "connect_seconds": seconds,
            "online_in_database": in_database[1],
            "online_on_socket": seen["online"],
            "database_s": in_database[0] - started if in_database[0] else float("nan"),
            "socket_s": seen["all_online_at"] - started if seen["all_online_at"] else float("nan"),
        }

    async def _start_simulator(self, devices: int, connect_rate: float) -> tuple[Service, float]:
        """The simulator as a user runs it; returns it and the time it began connecting (its "simulating"
        line, written once its devices are provisioned, right before the first connection)."""
        argv = [sys.executable, "src/manage.py", "simulate_devices", "--count", str(devices)]
        argv += ["--prefix", CONNECTING_PREFIX, "--owner", "bench", "--connect-rate", f"{connect_rate:g}"]
        argv += ["--rate", "20", "--replies", "ok", "--host", "127.0.0.1", "--port", str(self.broker_port)]
        log = self.workdir / "simulator.log"
        handle = log.open("wb")
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=self.project, env=self.env, stdout=handle, stderr=asyncio.subprocess.STDOUT
        )
        handle.close()
        service = Service("simulator", process, log)
        self.services.append(service)
        deadline = time.monotonic() + 120
        while b"simulating" not in log.read_bytes():
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start:\n{log.read_text(errors='replace')[-3000:]}")
            await asyncio.sleep(0.005)
        return service, time.time()

    async def _set_offline(self, prefix: str) -> None:
        """Devices left online by an earlier run start offline, so every one has to come online again."""
        async with await psycopg.AsyncConnection.connect(**self.pg_params(self.tag)) as conn:
            await conn.execute(
                "UPDATE devices_device SET is_online = false WHERE username LIKE %s", (f"{prefix}-%",)
            )

    async def _wait_online(self, prefix: str, devices: int, deadline: float) -> tuple[float | None, int]:
        """When the database first showed all `devices` online (polled every 20 ms), and how many were."""
        online = 0
        async with await psycopg.AsyncConnection.connect(**self.pg_params(self.tag)) as conn:
            while time.time() < deadline:
                cursor = await conn.execute(
                    "SELECT count(*) FROM devices_device WHERE is_online AND username LIKE %s",
                    (f"{prefix}-%",),
                )
                row = await cursor.fetchone()
                online = row[0] if row else 0
                if online >= devices:
                    return time.time(), online
                await asyncio.sleep(0.02)
        return None, online

    @staticmethod
    def _rate(got: dict[str, Any], start: float, expected: int) -> float:
        if not got["received"] or got["last"] is None:
            return 0.0
        if got["received"] < expected:
            logger.warning("only %d of %d messages arrived", got["received"], expected)
        return got["received"] / (got["last"] - start)

    async def run_once(self) -> dict[str, Any]:
        self.cpu = {}
        publisher = await self.publisher_path()
        raw, raw_cpu = await self.raw_ingest()
        one, one_cpu = await self.handler_ingest(1)
        two, two_cpu = await self.handler_ingest(2)
        fleet, fleet_cpu = await self.handler_ingest(1, spread=True)
        latency = await self.latency()
        sockets = await self.fleet_websockets() if self.owners else None
        connecting = await self.fleet_connect() if self.owners else None
        self.cpu["handler_ingest"] = {"project": one_cpu, "baseline": raw_cpu}
        self.cpu["replicas_two"] = {"project": two_cpu, "baseline": one_cpu}
        self.cpu["fleet_ingest"] = {"project": fleet_cpu, "baseline": one_cpu}
        return {
            "publisher": publisher,
            "handler_ingest": {"project": one, "baseline": raw},
            "replicas": {"one": one, "two": two},
            "fleet_ingest": {"project": fleet, "baseline": one, "devices": self.fleet},
            "latency": latency,
            **({"fleet_websockets": sockets} if sockets else {}),
            **({"fleet_connect": connecting} if connecting else {}),
            "cpu": self.cpu,
        }


def _is_redis(pid: int) -> bool:
    """Whether `pid` is a Redis server here (not a Redis in a container or on another host)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("redis")
    except OSError:
        return False


def _other_kind(topics: dict[str, list[str]]) -> str:
    others = [kind for kind in topics if kind != "event"]
    return others[0] if others else "event"


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _ms(seconds: list[float], pct: float) -> float:
    return _percentile(seconds, pct) * 1000


@contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="iot-bench-"))
    try:
        yield path
    finally:
        if keep:
            logger.info("kept %s", path)
        else:
            shutil.rmtree(path, ignore_errors=True)


async def main_async(args: argparse.Namespace) -> int:
    with workdir(args.keep) as tmp:
        bench = Bench(
            project=args.project,
            workdir=tmp,
            messages=args.messages,
            fleet=FLEET_DEVICES,
            owners=SOCKET_OWNERS,
        )
        # Before anything of the benchmark's own starts, so the load average is the machine's.
        machine_info = machine()
        runs = []
        try:
            await bench.start()
            for index in range(args.runs):
                logger.info("run %d of %d", index + 1, args.runs)
                runs.append(await bench.run_once())
                logger.info("run %d: %s", index + 1, json.dumps(runs[-1]))
        finally:
            await bench.stop()
        summary = summarize(runs)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {"machine": machine_info, "messages": args.messages, "runs": runs, "median": summary}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        sys.stdout.write(format_table(summary, len(runs), machine_info) + "\n")
        sys.stdout.write(f"figures written to {args.json}\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--project", type=Path, required=True, help="a baked project with its .venv deps installed"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per throughput measurement")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (service logs)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
