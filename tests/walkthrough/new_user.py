"""A new user's first hour with a generated project, run as processes the way its README says.

Run by the template suite with a generated project's .venv python, from the project's folder, against the
PostgreSQL, Redis and MQTT broker the environment names (127.0.0.1 by default). It follows the README's
"Native development" section: migrate_native, createsuperuser_native, create_device, then run_django +
run_mqtt_handler + run_mqtt_publisher, and checks the seed's two promises end to end with the topics this
project was generated with (src/apps/mqtt_service/topology.py):

1. a device publishing `<device prefix>/<username>/<kind>` reaches a logged-in browser on /ws/connect/, for
   every answered kind;
2. `mqtt_publisher.publish(topic="<command prefix>/<username>", ...)` reaches the device.

Exits 0 when both hold; any failure raises with what was seen. Everything it creates (database, Redis keys,
processes) is its own and removed at the end.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import closing, suppress
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import redis
import websockets

PROJECT = Path.cwd()
PYTHON = sys.executable
sys.path.insert(0, str(PROJECT / "src"))
from apps.mqtt_service import topology  # noqa: E402  (plain constants: no Django needed)

RUN_ID = secrets.token_hex(4)
DEVICE = f"device_{RUN_ID}"
ADMIN_PASSWORD = secrets.token_urlsafe(16)
TIMEOUT = 30.0
HANDLER_CLIENT_ID = f"walkthrough-{RUN_ID}-handler"

HOSTS = {
    "POSTGRES_HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
    "POSTGRES_PORT": os.environ.get("POSTGRES_PORT", "5432"),
    "POSTGRES_USER": os.environ.get("POSTGRES_USER", "postgres"),
    "POSTGRES_PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
    "REDIS_HOST": os.environ.get("REDIS_HOST", "127.0.0.1"),
    "REDIS_PORT": os.environ.get("REDIS_PORT", "6379"),
    "REDIS_PASSWORD": os.environ.get("REDIS_PASSWORD", ""),
    "MQTT_BROKER_HOST": os.environ.get("MQTT_BROKER_HOST", "127.0.0.1"),
    "MQTT_BROKER_PORT": os.environ.get("MQTT_BROKER_PORT", "1883"),
}
# README step 2: real environment variables win over .env, so the generated .env (for Docker) stays as is.
ENV = {
    **os.environ,
    **HOSTS,
    "POSTGRES_DB": f"walkthrough_{RUN_ID}",
    "DJANGO_DEBUG": "True",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    # Shared Redis: this run's keys only.
    "CHANNEL_LAYER_PREFIX": f"walkthrough-{RUN_ID}:ws:",
    "MQTT_PUBLISH_QUEUE": f"walkthrough-{RUN_ID}:publish_queue",
    "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD,
}


def step(message: str) -> None:
    print(f"walkthrough: {message}", flush=True)


def manage(*args: str) -> str:
    result = subprocess.run(
        [PYTHON, "src/manage.py", *args], cwd=PROJECT, env=ENV, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin_connection() -> psycopg.Connection:
    return psycopg.connect(
        host=HOSTS["POSTGRES_HOST"],
        port=HOSTS["POSTGRES_PORT"],
        user=HOSTS["POSTGRES_USER"],
        password=HOSTS["POSTGRES_PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


def start(name: str, *command: str, client_id: str | None = None) -> subprocess.Popen:
    env = dict(ENV, MQTT_CLIENT_ID=client_id) if client_id else ENV
    log = open(PROJECT / f"walkthrough-{name}.log", "w")
    return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_health(base: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with suppress(OSError):
            with urllib.request.urlopen(f"{base}/health/", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError("/health/ never answered 200")


def log_in(base: str) -> str:
    """Sign in through the admin login form, as a browser does; returns the session cookie header."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/admin/login/", timeout=10) as response:
        form = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode(
        {"username": "admin", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/", data=data, headers={"Referer": f"{base}/admin/login/"}
    )
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
    cookies = {cookie.name: cookie.value for cookie in jar}
    if "sessionid" not in cookies:
        raise RuntimeError("admin login gave no session cookie")
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def device_client(password: str) -> tuple[mqtt.Client, queue.Queue]:
    received: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5)
    client.username_pw_set(DEVICE, password)
    client.on_message = lambda _c, _u, message: received.put(message)
    client.connect(HOSTS["MQTT_BROKER_HOST"], int(HOSTS["MQTT_BROKER_PORT"]))
    client.loop_start()
    return client, received


async def browser_receives_device_message(base: str, cookie: str, device: mqtt.Client, kind: str) -> dict:
    url = base.replace("http://", "ws://") + "/ws/connect/"
    # An anonymous browser is refused at the handshake.
    try:
        async with websockets.connect(url, origin=base):
            raise RuntimeError("an anonymous WebSocket was accepted")
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 403, refused
    async with websockets.connect(url, origin=base, additional_headers={"Cookie": cookie}) as socket_:
        deadline = time.monotonic() + TIMEOUT
        # The handler may still be subscribing: the device publishes until the browser sees it.
        while time.monotonic() < deadline:
            topic = f"{topology.DEVICE_TOPIC_PREFIX}/{DEVICE}/{kind}"
            device.publish(topic, json.dumps({"battery": 97}), qos=1)
            with suppress(TimeoutError):
                message = json.loads(await asyncio.wait_for(socket_.recv(), timeout=1.0))
                if message.get("type") == f"device.{kind}" and message.get("device") == DEVICE:
                    return message
        raise RuntimeError(f"the browser never received the device's {kind} message")


def forget_session(client_id: str) -> None:
    """Remove a persistent session the run left on the broker, so it takes no share of later messages."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(HOSTS["MQTT_BROKER_HOST"], int(HOSTS["MQTT_BROKER_PORT"]), clean_start=True)
    client.disconnect()


def main() -> None:
    processes: list[subprocess.Popen] = []
    with admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{ENV["POSTGRES_DB"]}"')
    try:
        manage("migrate", "--noinput")
        manage("createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com")
        created = manage("create_device", DEVICE, "--owner", "admin")
        password = re.search(r"Device password: (\S+)", created).group(1)
        step(f"created superuser admin and device {DEVICE}")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        uvicorn = str(Path(PYTHON).with_name("uvicorn"))
        processes.append(
            start("django", uvicorn, "config.asgi:application", "--app-dir", "src", "--port", str(port))
        )
        processes.append(
            start("handler", PYTHON, "src/manage.py", "run_mqtt_handler", client_id=HANDLER_CLIENT_ID)
        )
        processes.append(
            start(
                "publisher",
                PYTHON,
                "src/manage.py",
                "run_mqtt_publisher",
                client_id=f"walkthrough-{RUN_ID}-publisher",
            )
        )
        wait_for_health(base)
        step("django, mqtt handler and mqtt publisher are up; /health/ is 200")

        cookie = log_in(base)
        device, commands = device_client(password)
        try:
            command_topic = f"{topology.COMMAND_TOPIC_PREFIX}/{DEVICE}"
            device.subscribe(command_topic, qos=1)
            for kind in topology.DEVICE_MESSAGE_KINDS:
                message = asyncio.run(browser_receives_device_message(base, cookie, device, kind))
                assert message["data"] == {"battery": 97}, message
                step(f"browser on /ws/connect/ received {message['type']} of {DEVICE}")

            command_id = manage(
                "shell",
                "-c",
                "from apps.mqtt_service.mqtt_publisher import mqtt_publisher; print(mqtt_publisher.publish("
                f"topic={command_topic!r}, payload={{'cmd': 'reboot'}}, qos=1))",
            ).splitlines()[-1]
            delivered = commands.get(timeout=TIMEOUT)
            assert json.loads(delivered.payload) == {"cmd": "reboot"}, delivered.payload
            properties = dict(getattr(delivered.properties, "UserProperty", []) or [])
            assert properties.get("command_id") == command_id, properties
            step(f"device received the command on {command_topic} (command id {command_id})")
        finally:
            device.loop_stop()
            device.disconnect()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        # The handler's session is persistent (it must survive restarts); this run's one is not needed again.
        forget_session(HANDLER_CLIENT_ID)
        # The project keeps the channel layer in Redis database 3 and the publish queue in database 4.
        for db in (3, 4):
            client = redis.Redis(
                host=HOSTS["REDIS_HOST"],
                port=int(HOSTS["REDIS_PORT"]),
                password=HOSTS["REDIS_PASSWORD"] or None,
                db=db,
            )
            for key in client.scan_iter(match=f"walkthrough-{RUN_ID}*"):
                client.delete(key)
            client.close()
        with admin_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{ENV["POSTGRES_DB"]}" WITH (FORCE)')
    step("ok")


if __name__ == "__main__":
    main()
