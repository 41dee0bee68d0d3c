"""The backend as a user runs it natively (README, "Native development"), as child processes on the test's
database: the ASGI server (uvicorn, as `make run_django` without --reload), the MQTT handler and publisher,
and the device simulator. Synchronous, for browser tests: Selenium blocks, and nothing here needs a loop.

Each stack has its own channel-layer prefix, shared-subscription group, publish queue and client ids, so it
sees only its own traffic on the machine's shared Redis and broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fault_services import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANAGE = PROJECT_ROOT / "src" / "manage.py"
BIN = Path(sys.executable).parent
# Bounds for a busy machine: each process is a Django start, then a connection to its services.
START_WITHIN = 120.0


class Process:
    """One child process, its output in a log file (a pipe nobody reads would block it)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = logs / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, ready_line: str | None = None, within: float = START_WITHIN) -> Process:
        return self.launch(ready_line).wait_ready(within)

    def launch(self, ready_line: str | None = None) -> Process:
        """Start it without waiting: several processes then start side by side."""
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._ready_line = ready_line
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, within: float = START_WITHIN) -> Process:
        """Wait until its log shows the ready line (written after this start)."""
        assert self.popen is not None
        deadline = time.monotonic() + within
        while self._ready_line is not None and self._ready_line not in self.log()[self._offset :]:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.log()[self._offset :][-4000:]}")
            time.sleep(0.05)
        return self

    def stop(self, number: int = signal.SIGTERM, within: float = 30.0) -> None:
        """Ask it to stop (SIGTERM: drain and exit), killing it when it does not in time."""
        if not self.running:
            return
        self.popen.send_signal(number)
        try:
            self.popen.wait(within)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill(self) -> None:
        """SIGKILL: gone at once, sockets closed by the kernel, no goodbye sent."""
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class LiveStack:
    """The server, handler and publisher of one test; `url` is where a browser finds the server."""

    database: str
    logs: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_ENV_FILE=str(PROJECT_ROOT / "tests" / "test.env"),
            POSTGRES_DB=self.database,
            CHANNEL_LAYER_PREFIX=f"test:{self.tag}:",
            # The server queues commands here and this stack's publisher sends them: no other publisher
            # takes them.
            MQTT_PUBLISH_QUEUE=f"test:{self.tag}:publish_queue",
        )
        return env

    def process(self, name: str, command: list[str]) -> Process:
        process = Process(name, command, self.env(), self.logs)
        self.processes.append(process)
        return process

    def manage(self, name: str, *args: str) -> Process:
        return self.process(name, [sys.executable, str(MANAGE), *args])

    def launch_server(self) -> Process:
        """Also after a stop, on the same port: a restart as the browser sees it."""
        command = [str(BIN / "uvicorn"), "config.asgi:application", "--app-dir", "src"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.server = self.process("server", command).launch("Application startup complete")
        return self.server

    def launch(self) -> LiveStack:
        """Start the server, handler and publisher side by side; wait_ready() waits for them."""
        self._starting = [
            self.launch_server(),
            self.manage(
                "handler", "run_mqtt_handler", "--client-id", f"test-handler-{self.tag}",
                "--shared-group", f"g{self.tag}", "--session-expiry", "30",
            ).launch("subscribed to"),
            self.manage(
                "publisher", "run_mqtt_publisher", "--client-id", f"test-publisher-{self.tag}"
            ).launch("connected to"),
        ]  # fmt: skip
        return self

    def wait_ready(self) -> LiveStack:
        for process in self._starting:
            process.wait_ready()
        return self

    def simulate(self, *args: str) -> Process:
        """`manage.py simulate_devices <args>`; it is running once it says which devices it simulates."""
        return self.manage(f"simulator-{len(self.processes)}", "simulate_devices", *args).start("simulating")

    def stop(self) -> None:
        """SIGTERM to every process at once, then wait for each (SIGKILL after 10 s)."""
        for process in self.processes:
            if process.running:
                process.popen.terminate()
        for process in self.processes:
            process.stop(within=10.0)

    def logs_tail(self, chars: int = 3000) -> str:
        seen: set[Path] = set()
        parts = []
        for process in self.processes:
            if process.log_path not in seen:
                seen.add(process.log_path)
                parts.append(f"--- {process.name} ---\n{process.log()[-chars:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def live_stack(database: str, logs: Path) -> Iterator[LiveStack]:
    """A launched stack (call wait_ready() before using it), stopped at the end."""
    stack = LiveStack(database, logs)
    try:
        yield stack.launch()
    finally:
        stack.stop()
