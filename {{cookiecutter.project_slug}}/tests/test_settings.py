"""Settings come from the environment, and production refuses to start on a weak or example secret.

Each case runs in a fresh interpreter with a clean environment, exactly as a server process would start.
"""

import json
import os
import re
import secrets
import subprocess
import sys
import tomllib
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


PRODUCTION_ENV = {
    "DJANGO_DEBUG": "False",
    "DJANGO_ALLOWED_HOSTS": "iot.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://iot.example.com",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "True",
}
PRINT_PRODUCTION_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings as s; import config.asgi; "
    "print(json.dumps({'debug': s.DEBUG, 'ssl_redirect': s.SECURE_SSL_REDIRECT, "
    "'hsts': s.SECURE_HSTS_SECONDS, 'hsts_subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
    "'session_secure': s.SESSION_COOKIE_SECURE, "
    "'csrf_secure': s.CSRF_COOKIE_SECURE, 'proxy_header': s.SECURE_PROXY_SSL_HEADER, "
    "'static': s.STORAGES['staticfiles']['BACKEND'], 'hosts': s.ALLOWED_HOSTS}))"
)


def test_check_deploy_is_clean_under_a_production_env(empty_env_file):
    """manage.py as a server would run it: DEBUG off, a real secret key, real hosts, behind a TLS proxy."""
    result = subprocess.run(
        [sys.executable, "src/manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_ROOT,
        env={
            "PATH": os.environ.get("PATH", ""),
            "DJANGO_ENV_FILE": str(empty_env_file),
            "DJANGO_SECRET_KEY": strong_key(),
            **PRODUCTION_ENV,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_production_branch_of_the_settings(empty_env_file):
    """DJANGO_DEBUG=False switches on HTTPS redirects, HSTS, secure cookies and hashed static files, and the
    ASGI application loads with them."""
    result = run_python(
        PRINT_PRODUCTION_SETTINGS, empty_env_file, DJANGO_SECRET_KEY=strong_key(), **PRODUCTION_ENV
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "debug": False,
        "ssl_redirect": True,
        "hsts": 31536000,
        "hsts_subdomains": True,
        "session_secure": True,
        "csrf_secure": True,
        "proxy_header": ["HTTP_X_FORWARDED_PROTO", "https"],
        "static": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "hosts": ["iot.example.com"],
    }


def test_every_variable_that_changes_behaviour_is_pinned_for_the_suite():
    """A variable the code reads either says where a service is (the developer's shell may point the suite
    elsewhere) or is removed from the suite's environment in pyproject.toml, so tests/test.env and the code's
    defaults decide: DJANGO_ALLOWED_HOSTS='*' or DJANGO_DEBUG=False in a shell cannot flip a test."""
    service_locations = {
        *(f"POSTGRES_{name}" for name in ("HOST", "PORT", "DB", "USER", "PASSWORD")),
        *(f"REDIS_{name}" for name in ("HOST", "PORT", "PASSWORD")),
        "MQTT_BROKER_HOST",
        "MQTT_BROKER_PORT",
        *(f"MQTT_{role}_{name}" for role in ("HANDLER", "PUBLISHER") for name in ("USERNAME", "PASSWORD")),
    }
    read = set()
    for path in (PROJECT_ROOT / "src").rglob("*.py"):
        read |= set(
            re.findall(
                r"""(?:env\.\w+|environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']""", path.read_text()
            )
        )
    pytest_env = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]["env"]
    pinned = {
        line.split("=")[0].split(":")[-1]
        for line in pytest_env
        if line.startswith("U:") or ":" not in line.split("=")[0]
    }
    assert read, "no environment variable found: the pattern above no longer matches the settings code"
    unpinned = sorted(read - service_locations - pinned)
    assert not unpinned, f"pin these in pyproject.toml [tool.pytest.ini_options] env (U:NAME): {unpinned}"
    # The suite runs with tests/test.env's value (the settings read it) or none, whatever the shell had.
    test_env_text = (PROJECT_ROOT / "tests" / "test.env").read_text()
    test_env = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", test_env_text, re.M))
    test_env["DJANGO_ENV_FILE"] = "tests/test.env"
    assert {name: os.environ.get(name) for name in pinned} == {name: test_env.get(name) for name in pinned}


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
