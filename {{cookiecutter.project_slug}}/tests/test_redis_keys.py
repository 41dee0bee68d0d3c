"""Two projects on one Redis share nothing: every key this project writes starts with its slug.

The project's settings and a copy of them for another slug each run in their own interpreter, enqueue a real
Celery task, store a real task result and report their MQTT stream, counters, channel-layer and cache
prefixes; the keys they wrote in Redis are then compared.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OTHER_SLUG = "other_plant"
REPORT_KEYS = """
import json, sys, django
django.setup()
from django.conf import settings
from config.celery import app
from apps.mqtt_service.metrics import Metrics
from apps.mqtt_service.publish_queue import PublishQueue
queue_name, task_id = sys.argv[1], sys.argv[2]
app.send_task("keys.probe", queue=queue_name)
app.backend.store_result(task_id, 42, "SUCCESS")
queue = PublishQueue.from_settings()
print(json.dumps({
    "stream": queue.stream,
    "dead_letters": queue.dead_letter_stream,
    "metrics": Metrics("handler", "h-1").redis_key,
    "channel_layer": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
    "cache": settings.CACHES["default"]["KEY_PREFIX"],
}))
"""


def settings_module_for(slug: str, directory: Path) -> str:
    """The project's settings with another slug, as a module of its own."""
    source = (PROJECT_ROOT / "src" / "config" / "settings.py").read_text()
    line = f'PROJECT_SLUG = "{settings.PROJECT_SLUG}"'
    assert line in source
    (directory / f"settings_{slug}.py").write_text(source.replace(line, f'PROJECT_SLUG = "{slug}"'))
    return f"settings_{slug}"


def keys_written(settings_module: str, extra_path: Path, queue_name: str, task_id: str) -> dict[str, str]:
    # A clean environment but for where the services are: the variables that name keys take their defaults.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "MQTT_", "CHANNEL_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        DJANGO_ENV_FILE=str(PROJECT_ROOT / "tests" / "test.env"),
        PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT / "src"), str(extra_path)]),
    )
    result = subprocess.run(
        [sys.executable, "-c", REPORT_KEYS, queue_name, task_id],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def redis_keys(url: str, fragment: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        keys = [key.decode() for key in client.scan_iter(match=f"*{fragment}*", count=1000)]
        if keys:
            client.delete(*keys)
        return keys
    finally:
        client.close()


@pytest.fixture
def other_settings(tmp_path: Path) -> str:
    return settings_module_for(OTHER_SLUG, tmp_path)


def test_two_slugs_write_disjoint_redis_keys(tmp_path: Path, other_settings: str) -> None:
    written: dict[str, dict[str, object]] = {}
    for slug, module in ((settings.PROJECT_SLUG, "config.settings"), (OTHER_SLUG, other_settings)):
        queue_name, task_id = f"probe-{uuid.uuid4().hex}", uuid.uuid4().hex
        names = keys_written(module, tmp_path, queue_name, task_id)
        written[slug] = {
            **names,
            "task_id": task_id,
            "celery_broker": redis_keys(settings.REDIS_CELERY_BROKER_URL, queue_name),
            "celery_results": redis_keys(settings.REDIS_CELERY_RESULTS_URL, task_id),
        }

    for slug, names in written.items():
        assert names["stream"] == f"{slug}:mqtt:publish_queue"
        assert names["dead_letters"] == f"{slug}:mqtt:publish_queue:dead_letter"
        assert str(names["metrics"]).startswith(f"{slug}:mqtt:metrics:handler:h-1:")
        assert str(names["channel_layer"]).startswith(f"{slug}:")
        assert names["cache"] == slug
        # Real keys written by Celery: the task message in its queue and its binding, then the result.
        assert names["celery_broker"], f"no broker key found for {slug}"
        assert all(key.startswith(f"{slug}:celery:") for key in names["celery_broker"]), names
        assert names["celery_results"] == [f"{slug}:celery:celery-task-meta-{names['task_id']}"]

    ours, theirs = written[settings.PROJECT_SLUG], written[OTHER_SLUG]
    for name in ("stream", "dead_letters", "metrics", "channel_layer", "cache"):
        assert ours[name] != theirs[name], name
