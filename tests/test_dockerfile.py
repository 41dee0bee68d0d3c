"""The generated app image and container scripts: hadolint-clean, valid POSIX sh, executable, and doing
what compose relies on: refusing empty secrets, picking the server from DJANGO_DEBUG, writing EMQX's
bootstrap users."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
HADOLINT = Path(sys.executable).with_name("hadolint")
SHELL_SCRIPTS = (
    "compose/django/entrypoint.sh",
    "compose/django/start-django.sh",
    "compose/django/start-mqtt-handler.sh",
    "compose/django/start-mqtt-publisher.sh",
    "compose/django/start-celery-worker.sh",
    "compose/django/start-celery-beat.sh",
    "compose/django/start-flower.sh",
    "compose/emqx/entrypoint.sh",
)


def bake(cookies, **answers) -> Path:
    result = cookies.bake(extra_context=answers, template=str(TEMPLATE_DIR))
    assert result.exit_code == 0, result.exception
    return Path(result.project_path)


@pytest.fixture(scope="module")
def project(cookies_session) -> Path:
    return bake(cookies_session)


def run_script(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(script), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("python_version", ["3.12", "3.13"])
def test_dockerfile_passes_hadolint(cookies, python_version: str) -> None:
    dockerfile = bake(cookies, python_version=python_version) / "compose/django/Dockerfile"
    lint = subprocess.run(
        [str(HADOLINT), str(dockerfile)], capture_output=True, text=True, timeout=120, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    from_lines = [line for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")]
    assert from_lines, "no FROM line"
    assert all(f"python:{python_version}-slim-bookworm" in line for line in from_lines), from_lines


def test_image_runs_as_non_root_and_keeps_env_out(project: Path) -> None:
    dockerfile = (project / "compose/django/Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users, "the image never switches away from root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert 'ENTRYPOINT ["/app/compose/django/entrypoint.sh"]' in dockerfile
    assert "WORKDIR /app/src" in dockerfile
    assert ".env" in (project / ".dockerignore").read_text().splitlines()


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_script_is_executable_posix_sh(project: Path, script: str) -> None:
    path = project / script
    assert path.read_text().startswith("#!/bin/sh\n")
    assert path.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
    syntax = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """python/gunicorn/celery stand-ins that record how a start script invoked them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "gunicorn", "celery"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/calls"\n')
        tool.chmod(0o755)
    return bin_dir


def calls(fake_bin: Path) -> list[str]:
    return (fake_bin.parent / "calls").read_text().splitlines()


RUNSERVER = "python manage.py runserver"
GUNICORN = "gunicorn config.asgi:application"


@pytest.mark.parametrize(
    ("debug", "server"),
    [("True", RUNSERVER), ("true", RUNSERVER), ("1", RUNSERVER), ("False", GUNICORN), ("", GUNICORN)],
)
def test_start_django_picks_server_from_debug(project: Path, fake_bin: Path, debug: str, server: str) -> None:
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "DJANGO_DEBUG": debug, "GUNICORN_WORKERS": "3"}
    result = run_script(project / "compose/django/start-django.sh", env)
    assert result.returncode == 0, result.stderr
    recorded = calls(fake_bin)
    assert recorded[0].startswith("python manage.py migrate")
    assert recorded[1].startswith("python manage.py collectstatic --noinput")
    assert recorded[2].startswith(server), recorded
    if server.startswith("gunicorn"):
        assert "uvicorn_worker.UvicornWorker" in recorded[2]
        assert "--workers 3" in recorded[2]


def test_start_flower_refuses_empty_password(project: Path, fake_bin: Path) -> None:
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "FLOWER_USER": "admin", "FLOWER_PASSWORD": ""}
    result = run_script(project / "compose/django/start-flower.sh", env)
    assert result.returncode != 0
    assert "FLOWER_PASSWORD" in result.stderr
    assert not (fake_bin.parent / "calls").exists(), "flower started without a password"


def test_start_celery_beat_uses_database_scheduler(project: Path, fake_bin: Path) -> None:
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin"}
    result = run_script(project / "compose/django/start-celery-beat.sh", env)
    assert result.returncode == 0, result.stderr
    assert "django_celery_beat.schedulers:DatabaseScheduler" in calls(fake_bin)[-1]


def test_entrypoint_execs_the_command(project: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "WAIT_FOR_SERVICES": ""}
    result = run_script(project / "compose/django/entrypoint.sh", env, "echo", "started")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
    env["WAIT_FOR_SERVICES"] = "mysql"
    assert run_script(project / "compose/django/entrypoint.sh", env, "echo").returncode != 0


EMQX_USERS = {
    "MQTT_ROOT_USERNAME": "admin",
    "MQTT_ROOT_PASSWORD": "Root0pw",
    "MQTT_HANDLER_USERNAME": "svc_handler",
    "MQTT_HANDLER_PASSWORD": "handler-pw_1",
    "MQTT_PUBLISHER_USERNAME": "svc_publisher",
    "MQTT_PUBLISHER_PASSWORD": "PublisherPw2",
}


def emqx_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "EMQX_BOOTSTRAP_USERS_FILE": str(tmp_path / "data/bootstrap_users.json"),
        "EMQX_IMAGE_ENTRYPOINT": "true",
        **EMQX_USERS,
        **overrides,
    }


def test_emqx_entrypoint_writes_bootstrap_users(project: Path, tmp_path: Path) -> None:
    env = emqx_env(tmp_path)
    result = run_script(project / "compose/emqx/entrypoint.sh", env)
    assert result.returncode == 0, result.stderr
    bootstrap = Path(env["EMQX_BOOTSTRAP_USERS_FILE"])
    users = json.loads(bootstrap.read_text())
    assert users == [
        {"user_id": "admin", "password": "Root0pw", "is_superuser": True},
        {"user_id": "svc_handler", "password": "handler-pw_1", "is_superuser": False},
        {"user_id": "svc_publisher", "password": "PublisherPw2", "is_superuser": False},
    ]
    assert stat.S_IMODE(bootstrap.stat().st_mode) & 0o077 == 0, "bootstrap file readable by others"


@pytest.mark.parametrize("name", [key for key in EMQX_USERS])
@pytest.mark.parametrize("bad_value", ["", 'pw"injected', "pw with space", "pw\\"])
def test_emqx_entrypoint_refuses_empty_or_unsafe_credentials(
    project: Path, tmp_path: Path, name: str, bad_value: str
) -> None:
    env = emqx_env(tmp_path, **{name: bad_value})
    result = run_script(project / "compose/emqx/entrypoint.sh", env)
    assert result.returncode != 0
    assert name in result.stderr
    assert not os.path.exists(env["EMQX_BOOTSTRAP_USERS_FILE"])
