"""Which function handles a kind: an app's `mqtt_handlers` module (found with autodiscover_modules) replaces
the built-in handler of its kind; a handler of the project's own that batches with Batcher gets failures
isolated per message, and a handler that keeps failing costs a few log lines."""

import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.devices.models import Device
from apps.mqtt_service import router
from apps.mqtt_service.batch import Batcher
from apps.mqtt_service.handlers import STATUS_KIND, default_handler
from apps.mqtt_service.router import DeviceMessage, describe, load_handlers, message_handler
from mqtt_helpers import KINDS, device_client, eventually, make_scheme, running_handler, unique


@pytest.fixture
def handler_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An empty registry for this test: handlers it registers are gone afterwards."""
    registry: dict[str, Any] = {}
    monkeypatch.setattr(router, "_handlers", registry)
    return registry


def test_built_in_handlers_cover_every_answered_kind(handler_registry: dict[str, Any]) -> None:
    handlers = load_handlers(KINDS)
    assert set(handlers) == set(KINDS)
    for kind, handler in handlers.items():
        expected = "keep_latest_status" if kind == STATUS_KIND else "keep_history"
        assert describe(handler) == f"apps.mqtt_service.handlers.{expected}"


def test_an_apps_mqtt_handlers_module_is_discovered_and_replaces_the_built_in_handler(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch, handler_registry: dict[str, Any]
) -> None:
    app = f"handlers_app_{uuid.uuid4().hex[:8]}"
    package = tmp_path / app
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mqtt_handlers.py").write_text(
        "from apps.mqtt_service.router import DeviceMessage, message_handler\n\n\n"
        f"@message_handler({KINDS[0]!r})\n"
        "async def handle_it(message: DeviceMessage) -> None:\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, app]
    try:
        handlers = load_handlers(KINDS)
    finally:
        sys.modules.pop(f"{app}.mqtt_handlers", None)
    assert describe(handlers[KINDS[0]]) == f"{app}.mqtt_handlers.handle_it"
    for kind in KINDS[1:]:
        assert handlers[kind] is default_handler(kind)


def test_two_handlers_for_one_kind_are_refused(handler_registry: dict[str, Any]) -> None:
    async def first(message: DeviceMessage) -> None: ...

    async def second(message: DeviceMessage) -> None: ...

    message_handler("alarm")(first)
    with pytest.raises(ValueError, match="already registered"):
        message_handler("alarm")(second)


@database_sync_to_async
def create_device() -> Device:
    return Device.objects.create(username=unique("dev"))


@pytest.mark.django_db(transaction=True)
async def test_a_projects_batched_handler_loses_only_the_message_its_flush_refuses(
    handler_registry: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A handler of the project's own, batching its writes with Batcher, whose flush fails the whole batch
    when one item is bad (as one SQL statement does): only that message fails (handler_error); the others
    are handled. A handler failing for every message logs one traceback per interval, not one each."""
    caplog.set_level(logging.WARNING, logger="apps.mqtt_service")
    written: list[int] = []

    async def write_batch(items: list[dict[str, Any]]) -> list[None]:
        if any("bad" in item for item in items):
            raise ValueError("the store refuses this batch")
        written.extend(item["n"] for item in items)
        return [None] * len(items)

    batcher = Batcher(write_batch, name="project-writes")

    @message_handler(KINDS[0])
    async def handle_batched(message: DeviceMessage) -> None:
        await batcher.submit(message.payload)

    device = await create_device()
    scheme = make_scheme()
    topic = scheme.device_topic(device.username, KINDS[0])
    client_id = unique("test-handler")  # one replica, restarted below: a second would share the group
    async with running_handler(scheme, client_id=client_id) as service, device_client() as dev:
        for n in range(30):
            await dev.publish(
                topic, json.dumps({"n": n, **({"bad": True} if n == 12 else {})}).encode(), qos=1
            )
        assert await eventually(lambda: service.metrics.get("processed") == 29)
        assert await eventually(lambda: service.metrics.get("failed", "handler_error") == 1)
    assert sorted(written) == [n for n in range(30) if n != 12]
    await batcher.close()

    handler_registry.clear()
    caplog.clear()

    @message_handler(KINDS[0])
    async def always_fails(message: DeviceMessage) -> None:
        raise RuntimeError("this handler is broken")

    async with running_handler(scheme, client_id=client_id) as service, device_client() as dev:
        for n in range(200):
            await dev.publish(topic, json.dumps({"n": n}).encode(), qos=1)
        assert await eventually(lambda: service.metrics.get("failed", "handler_error") == 200)
    failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert 1 <= len(failures) <= 2
    assert sum(1 for r in failures if r.exc_info) <= 2
