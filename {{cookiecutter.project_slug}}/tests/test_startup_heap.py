"""The long-running processes freeze what they loaded at start, so full garbage collections stop walking
Django and the apps (50-90 ms per collection in the MQTT handler before), and the ASGI server runs full
collections less often (each walks every open socket's objects)."""

import gc
import os
import subprocess
import sys
from pathlib import Path

from apps.mqtt_service.management.commands._service_runner import run_service
from config.startup_heap import FULL_COLLECTION_EVERY

SRC = Path(__file__).resolve().parent.parent / "src"
# Django, the apps and channels are far more objects than this; an unfrozen process has none.
LOADED_OBJECTS = 10_000


def test_the_asgi_application_freezes_what_it_loaded_and_collects_fully_less_often() -> None:
    code = "import gc, config.asgi; print(gc.get_threshold()[2], gc.get_freeze_count())"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    full_every, frozen = map(int, done.stdout.split()[-2:])
    assert frozen > LOADED_OBJECTS
    assert full_every == FULL_COLLECTION_EVERY


class RecordingService:
    frozen_when_run: int | None = None

    def request_stop(self) -> None:
        pass

    async def run(self) -> None:
        RecordingService.frozen_when_run = gc.get_freeze_count()


def test_a_service_runs_with_its_startup_heap_frozen() -> None:
    gc.unfreeze()
    try:
        run_service(RecordingService)
    finally:
        gc.unfreeze()
    assert RecordingService.frozen_when_run is not None
    assert RecordingService.frozen_when_run > LOADED_OBJECTS
