"""Settings come from the environment, and production refuses to start on a weak or example secret.

Each case runs in a fresh interpreter with a clean environment, exactly as a server process would start.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.secret_key import check_production_secret_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRINT_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'debug': s.DEBUG, 'cache': s.CACHES['default']['LOCATION'], "
    "'broker': s.CELERY_BROKER_URL, 'results': s.CELERY_RESULT_BACKEND, "
    "'layer': s.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['address'], "
    "'queue': s.REDIS_PUBLISH_QUEUE_URL, 'mqtt_host': s.MQTT['host'], 'tz': s.TIME_ZONE, "
    "'beat': s.CELERY_BEAT_SCHEDULER, 'celery_tz': s.CELERY_TIMEZONE}))"
)


def strong_key() -> str:
    return secrets.token_urlsafe(50)


def run_python(code: str, env_file: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
    clean_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(PROJECT_ROOT / "src"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV_FILE": str(env_file),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def empty_env_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, "missing or empty"),
        ("", "missing or empty"),
        ("   ", "missing or empty"),
        ("django-insecure-" + "x1y2z3" * 10, "placeholder"),
        ("change-me", "placeholder"),
        ("short-but-random-3f9a", "too weak"),
        ("a" * 60, "too weak"),
    ],
)
def test_production_refuses_a_bad_secret_key(empty_env_file, secret, reason):
    extra = {} if secret is None else {"DJANGO_SECRET_KEY": secret}
    result = run_python("import django; django.setup()", empty_env_file, DJANGO_DEBUG="False", **extra)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert reason in result.stderr


def test_production_refuses_the_secret_shipped_in_env_example(tmp_path):
    example_key = "example-" + "k3y" * 20
    example = tmp_path / ".env.example"
    example.write_text(f"DJANGO_DEBUG=False\nDJANGO_SECRET_KEY='{example_key}'\n")
    with pytest.raises(ImproperlyConfigured, match="example value"):
        check_production_secret_key(example_key, example)
    check_production_secret_key(strong_key(), example)


def test_production_starts_with_a_strong_key(empty_env_file):
    result = run_python(PRINT_SETTINGS, empty_env_file, DJANGO_DEBUG="False", DJANGO_SECRET_KEY=strong_key())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is False


def test_debug_runs_without_a_secret_key(empty_env_file):
    result = run_python(PRINT_SETTINGS, empty_env_file, DJANGO_DEBUG="True")
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_under_a_production_env(empty_env_file):
    result = run_python(
        "import sys; from django.core.management import execute_from_command_line as run; "
        "run(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        empty_env_file,
        DJANGO_DEBUG="False",
        DJANGO_SECRET_KEY=strong_key(),
        DJANGO_ALLOWED_HOSTS="iot.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_redis_databases_and_password(empty_env_file):
    result = run_python(
        PRINT_SETTINGS, empty_env_file, DJANGO_DEBUG="True", REDIS_PASSWORD="p@ss/w:rd", REDIS_HOST="redis"
    )
    values = json.loads(result.stdout)
    quoted = "redis://:p%40ss%2Fw%3Ard@redis:6379"
    assert values["cache"] == f"{quoted}/0"
    assert values["broker"] == f"{quoted}/1"
    assert values["results"] == f"{quoted}/2"
    assert values["layer"] == f"{quoted}/3"
    assert values["queue"] == f"{quoted}/4"
    assert values["beat"] == "django_celery_beat.schedulers:DatabaseScheduler"


def test_env_file_is_read_and_real_environment_wins(tmp_path):
    env_file = tmp_path / "custom.env"
    env_file.write_text("DJANGO_DEBUG=True\nMQTT_BROKER_HOST=from-file\nDJANGO_TIME_ZONE=Asia/Tashkent\n")
    from_file = json.loads(run_python(PRINT_SETTINGS, env_file).stdout)
    assert from_file["mqtt_host"] == "from-file"
    assert from_file["tz"] == from_file["celery_tz"] == "Asia/Tashkent"
    overridden = json.loads(run_python(PRINT_SETTINGS, env_file, MQTT_BROKER_HOST="from-env").stdout)
    assert overridden["mqtt_host"] == "from-env"


def test_missing_env_file_named_explicitly_is_an_error(tmp_path):
    result = run_python("import django; django.setup()", tmp_path / "nope.env")
    assert result.returncode != 0
    assert "does not exist" in result.stderr


def test_env_file_path_is_relative_to_the_project_root(tmp_path):
    result = run_python(PRINT_SETTINGS, "tests/test.env")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is True
