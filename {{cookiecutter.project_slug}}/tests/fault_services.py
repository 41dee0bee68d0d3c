"""Dependencies a fault test may break: its own Mosquitto and Redis processes on free ports, and a TCP proxy
in front of PostgreSQL that can refuse connections. The machine's shared services are never touched.

Start and stop are async: the services under test keep running in the same event loop while a dependency
is down, and `ready_at` records (loop time) when it accepted connections again.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import getpass
import os
import socket
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

MOSQUITTO_CONF = Path(__file__).resolve().parent / "mosquitto.conf"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


async def wait_for_port(port: int, within: float = START_TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"nothing accepts connections on {HOST}:{port}") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


class ServiceProcess(abc.ABC):
    """One server process on a fixed port, stopped and started again on the same port and data dir."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.ready_at = 0.0
        self.log_path = workdir / f"{self.name}.log"

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The server's command line (it must listen on self.port)."""

    async def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(), cwd=self.workdir, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            log.close()
        try:
            await wait_for_port(self.port)
        except TimeoutError as exc:
            raise TimeoutError(f"{self.name} did not start:\n{self.log()}") from exc
        self.ready_at = asyncio.get_running_loop().time()

    async def stop(self) -> None:
        """SIGTERM, the clean shutdown `docker stop` asks for: the server saves its data first."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), START_TIMEOUT)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Mosquitto(ServiceProcess):
    """tests/mosquitto.conf plus a listener on a free port and a persistence dir of this broker only."""

    name = "mosquitto"

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        # Started as root, Mosquitto switches to the user `mosquitto`, which cannot write the test's private
        # temporary dir: stay the current user (the option is ignored when not root).
        extra = [
            f"listener {self.port} {HOST}",
            f"persistence_location {self.workdir}/",
            f"user {getpass.getuser()}",
        ]
        conf.write_text(MOSQUITTO_CONF.read_text() + "\n" + "\n".join(extra) + "\n")
        return ["mosquitto", "-c", str(conf)]


class RedisServer(ServiceProcess):
    """redis-server on a free port; `appendonly` as in compose/redis/redis.conf unless told otherwise."""

    name = "redis"

    def __init__(self, workdir: Path, appendonly: bool = True) -> None:
        super().__init__(workdir)
        self.appendonly = appendonly

    def url(self, db: int = 4) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
        ]  # fmt: skip


@contextlib.asynccontextmanager
async def running(service: ServiceProcess) -> AsyncIterator[ServiceProcess]:
    await service.start()
    try:
        yield service
    finally:
        await service.kill()


class TcpProxy:
    """Forwards a local port to `target`. `close()` aborts every connection and stops listening, so clients
    get "connection refused"; `open()` listens on the same port again. Runs in its own thread and event
    loop, so it keeps forwarding while the test's loop is busy."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(START_TIMEOUT)  # type: ignore[arg-type]

    def open(self) -> None:
        self._call(self._open())

    def close(self) -> None:
        self._call(self._close())

    def shutdown(self) -> None:
        self.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._loop.close()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, self.port, reuse_address=True)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, upstream_writer))
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer),
            self._pipe(upstream_reader, client_writer),
        )
        self._writers.difference_update((client_writer, upstream_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Either side going away (or close()) ends both directions; an abort is all the cleanup needed.
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ChildProcess:
    """A program of the project as a child process with the test settings, its log in a file (a pipe nobody
    reads would block it)."""

    def __init__(self, workdir: Path, *command: str, env: dict[str, str], name: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.command = command
        self.name = name
        self.env = env
        self.log_path = workdir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, ready_line: str, within: float = 20.0) -> None:
        """Start and wait until the log shows `ready_line` (logged after this start only)."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        child_env = dict(os.environ)
        child_env["DJANGO_ENV_FILE"] = str(PROJECT_ROOT / "tests" / "test.env")
        child_env.update(self.env)
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=PROJECT_ROOT,
                env=child_env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while ready_line not in self.log()[offset:]:
            if self.process.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"{self.name} not ready:\n{self.log()[offset:]}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def terminate(self, within: float = 30.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.terminate()
        return await asyncio.wait_for(self.process.wait(), within)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ManagePy(ChildProcess):
    """`manage.py <args>` as a child process."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str]) -> None:
        manage = str(PROJECT_ROOT / "src" / "manage.py")
        super().__init__(workdir, sys.executable, manage, *args, env=env, name=args[0])
