"""/ws/connect/ under real ASGI servers (uvicorn as `make run_django` starts it, gunicorn with
uvicorn-worker's worker as the container starts it): bursts of handshakes, vanishing clients, SIGTERM."""

import asyncio
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connection

from conftest import RUN_ID, group_members, session_cookie_for
from fault_services import ChildProcess, free_port

pytestmark = pytest.mark.django_db(transaction=True)

BIN = Path(sys.executable).parent
# Under this, a SIGTERM counts as prompt; a server that hangs waits for SIGKILL (docker stop: 10 s).
PROMPT_EXIT_SECONDS = 5.0


@dataclass
class Server:
    process: ChildProcess
    url: str
    layer_prefix: str

    def headers(self, cookie: str) -> dict[str, str]:
        return {"Cookie": cookie, "Origin": "http://localhost"}


def server_command(kind: str, port: int) -> list[str]:
    if kind == "uvicorn":  # as `make run_django`, without --reload
        return [str(BIN / "uvicorn"), "config.asgi:application", "--app-dir", "src", "--port", str(port)]
    # As compose/django/start-django.sh, with one worker.
    return [
        str(BIN / "gunicorn"),
        "config.asgi:application",
        "--chdir",
        "src",
        "--worker-class",
        "uvicorn_worker.UvicornWorker",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--graceful-timeout",
        "30",
        "--no-control-socket",
    ]


@pytest.fixture(params=["uvicorn"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    port = free_port()
    prefix = f"test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    env = {"POSTGRES_DB": await database_sync_to_async(lambda: connection.settings_dict["NAME"])()}
    env["CHANNEL_LAYER_PREFIX"] = prefix
    process = ChildProcess(tmp_path, *server_command(request.param, port), env=env, name=request.param)
    await process.start("Application startup complete", within=30)
    try:
        yield Server(process, f"ws://127.0.0.1:{port}/ws/connect/", prefix)
    finally:
        await process.kill()


async def cookie_of(make_user, **extra: object) -> str:
    user = await sync_to_async(make_user)(**extra)
    return await database_sync_to_async(session_cookie_for)(user)


async def ping(socket: websockets.ClientConnection) -> None:
    await socket.send('{"action": "ping"}')
    assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}


async def until_no_group_member(prefix: str, within: float = 10.0) -> dict[str, int]:
    """The server notices a vanished client in its own time: poll the group keys until they are empty."""
    members = group_members(prefix)
    for _ in range(int(within / 0.1)):
        if not members:
            break
        await asyncio.sleep(0.1)
        members = group_members(prefix)
    return members


async def test_a_burst_of_200_handshakes_all_succeed(server: Server, make_user) -> None:
    """Each staff socket joins two groups while connecting: 400 joins at once, more than the Redis pool's
    connections. Every handshake waits for a connection instead of failing with HTTP 500."""
    headers = server.headers(await cookie_of(make_user, is_staff=True))
    for _ in range(2):
        handshakes = [
            websockets.connect(server.url, additional_headers=headers, open_timeout=60) for _ in range(200)
        ]
        results = await asyncio.gather(*handshakes, return_exceptions=True)
        sockets = [result for result in results if not isinstance(result, BaseException)]
        failures = [repr(result) for result in results if isinstance(result, BaseException)]
        try:
            assert not failures, f"{len(failures)} of 200 handshakes failed, e.g. {failures[0]}"
            await asyncio.gather(*(ping(socket) for socket in sockets))
            assert sum(group_members(server.layer_prefix).values()) == 400
        finally:
            await asyncio.gather(*(socket.close() for socket in sockets))
        assert await until_no_group_member(server.layer_prefix) == {}
    assert "Traceback" not in server.process.log()


async def test_fifty_crashing_clients_leave_no_group_member(server: Server, make_user) -> None:
    """Clients that send garbage and drop the TCP connection without a close frame, or close mid-frame."""
    headers = server.headers(await cookie_of(make_user, is_staff=True))

    async def misbehave(i: int) -> None:
        socket = await websockets.connect(server.url, additional_headers=headers, max_size=None)
        frames = ["[" * 3000, "[" * 2000 + "]" * 2000, "x" * 1_000_000, '{"action": "subscribe"}', b"\x00"]
        await socket.send(frames[i % len(frames)])
        if i % 2:
            await asyncio.wait_for(socket.recv(), 10)  # the error frame
        if i % 3:
            socket.transport.abort()  # vanishes: no close frame
        else:
            await socket.close(code=4000 + i)

    await asyncio.gather(*(misbehave(i) for i in range(50)))
    assert await until_no_group_member(server.layer_prefix) == {}
    async with websockets.connect(server.url, additional_headers=headers) as healthy:
        await ping(healthy)
    assert "Traceback" not in server.process.log()


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"], indirect=True)
async def test_sigterm_stops_the_server_promptly_with_sockets_open_and_recently_closed(
    server: Server, make_user
) -> None:
    """Sockets that closed together used to leave a channel-layer receive running forever, and the server
    waited for it ("Waiting for background tasks to complete") until it was killed."""
    headers = server.headers(await cookie_of(make_user))
    # The lost cancellation is a race: several rounds make it near certain without the fix.
    for _ in range(8):
        closed = [await websockets.connect(server.url, additional_headers=headers) for _ in range(4)]
        await asyncio.gather(*(ping(socket) for socket in closed))
        for socket in closed:  # one after the other, as a browser's tabs close
            await socket.close()
    still_open = [await websockets.connect(server.url, additional_headers=headers) for _ in range(2)]
    await asyncio.gather(*(ping(socket) for socket in still_open))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    try:
        code = await server.process.terminate(within=PROMPT_EXIT_SECONDS)
    except TimeoutError:
        raise AssertionError(
            f"no exit within {PROMPT_EXIT_SECONDS}s of SIGTERM:\n{server.process.log()[-2000:]}"
        ) from None
    assert code in (0, -signal.SIGTERM), server.process.log()[-2000:]  # uvicorn re-raises the signal
    assert time.monotonic() - started < PROMPT_EXIT_SECONDS
    for socket in still_open:
        await socket.close()
