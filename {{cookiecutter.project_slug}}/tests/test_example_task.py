"""example_task through a real Celery worker process, on the local Redis broker (not eager mode)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from apps.main.tasks import example_task

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker_queue(tmp_path):
    """Start `celery -A config worker` on a queue of this test only, so no other worker can take the task."""
    queue = f"test-{uuid.uuid4().hex}"
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT / "src"),
        "DJANGO_ENV_FILE": os.environ.get("DJANGO_ENV_FILE", "tests/test.env"),
    }
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "--queues",
                queue,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=PROJECT_ROOT / "src",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield queue, log_path
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_example_task_runs_on_a_real_worker(worker_queue):
    queue, log_path = worker_queue
    result = example_task.apply_async(args=["Hello"], queue=queue)
    assert result.get(timeout=60) == "Processed: Hello"
    assert result.successful()
    assert "example_task received: Hello" in log_path.read_text()
