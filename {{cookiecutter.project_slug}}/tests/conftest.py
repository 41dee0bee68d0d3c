"""Shared fixtures. The suite runs against real PostgreSQL, Redis and an MQTT broker (tests/test.env).

Every run gets its own test database and its own channel-layer prefix, so two runs on one machine
(or one CI host) never see each other's data or messages.
"""

import copy
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.utils import translation

RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
POSTGRES_MAX_NAME = 63
ALLOWED_ORIGIN = "http://localhost"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database of this run only (pytest-django would share test_<name> between concurrent runs)."""
    database = settings.DATABASES["default"]
    name = f"test_{database['NAME']}_{RUN_ID}"[:POSTGRES_MAX_NAME]
    database.setdefault("TEST", {})["NAME"] = name


@pytest.fixture(scope="session", autouse=True)
def static_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An existing, empty STATIC_ROOT: tests need no collectstatic, and WhiteNoise stays quiet."""
    settings.STATIC_ROOT = tmp_path_factory.mktemp("staticfiles")


@pytest.fixture(scope="session", autouse=True)
def isolated_channel_layer() -> Iterator[None]:
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"test:{RUN_ID}:"
    channel_layers.backends.clear()
    yield
    async_to_sync(get_channel_layer().flush)()
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def english_messages() -> Iterator[None]:
    """Tests assert messages in English, whatever LANGUAGE_CODE the project was generated with (Django's own
    validation messages are translated)."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    """Each async test has its own event loop; a layer instance must not carry connections across loops."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def layer_prefix(settings: Any) -> str:
    """A channel-layer prefix of this test only, so its group keys can be counted exactly."""
    prefix = f"test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["prefix"] = prefix
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()
    return prefix


def group_members(prefix: str) -> dict[str, int]:
    """Members of every channel-layer group under `prefix` (channels_redis keeps each group as a sorted set
    named `<prefix>:group:<name>`): what a socket that left without cleaning up would leave behind."""
    client = redis.Redis.from_url(settings.REDIS_CHANNEL_LAYER_URL)
    try:
        keys = client.scan_iter(match=f"{prefix}:group:*", count=1000)
        return {key.decode(): client.zcard(key) for key in keys if client.zcard(key)}
    finally:
        client.close()


@pytest.fixture
def make_user(django_user_model: type[AbstractBaseUser]) -> Callable[..., AbstractBaseUser]:
    def make(username: str | None = None, **extra: object) -> AbstractBaseUser:
        return django_user_model.objects.create_user(
            username=username or f"user-{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex, **extra
        )

    return make


def session_cookie_for(user: AbstractBaseUser) -> str:
    """A real session for `user`, as the browser would send it: `sessionid=<key>`."""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def websocket_headers(
    cookie: str | None = None, origin: str | None = ALLOWED_ORIGIN
) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return headers


OpenSocket = Callable[..., Awaitable[tuple[WebsocketCommunicator, bool, int | None]]]


@pytest.fixture
async def open_socket() -> AsyncIterator[OpenSocket]:
    """Open /ws/connect/ through the real ASGI application; every socket is closed after the test."""
    from config.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_(
        user: AbstractBaseUser | None = None, origin: str | None = ALLOWED_ORIGIN, path: str = "/ws/connect/"
    ) -> tuple[WebsocketCommunicator, bool, int | None]:
        cookie = await database_sync_to_async(session_cookie_for)(user) if user is not None else None
        communicator = WebsocketCommunicator(application, path, headers=websocket_headers(cookie, origin))
        connected, code = await communicator.connect(timeout=5)
        opened.append(communicator)
        return communicator, connected, code

    yield open_
    for communicator in opened:
        await communicator.disconnect()
