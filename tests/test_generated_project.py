"""Bake the default answers and run the generated project's own `make install` and `make test`, as a
user would, against the PostgreSQL, Redis and MQTT broker the environment points at (by default the
services on 127.0.0.1 named in the generated tests/test.env)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
# Installing the pinned dependencies and running a suite against real services takes minutes, not seconds.
INSTALL_TIMEOUT_SECONDS = 1800
TEST_TIMEOUT_SECONDS = 1800


def project_env() -> dict[str, str]:
    """The caller's environment (so POSTGRES_HOST etc. can point elsewhere), minus this suite's own venv."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTEST_ADDOPTS", None)
    # Reuse one wheel cache across bakes and runs instead of downloading the dependencies every time.
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    return env


def run_make(project: Path, target: str, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", target],
        cwd=project,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tail(result: subprocess.CompletedProcess[str], chars: int = 6000) -> str:
    return f"--- stdout ---\n{result.stdout[-chars:]}\n--- stderr ---\n{result.stderr[-chars:]}"


@pytest.fixture(scope="session")
def installed_project(tmp_path_factory: pytest.TempPathFactory, cookiecutter_config: Path) -> Path:
    """The defaults, baked and installed once (`make install`) for every test that runs the project."""
    from cookiecutter.main import cookiecutter

    out = tmp_path_factory.mktemp("installed")
    project = Path(
        cookiecutter(
            str(TEMPLATE_DIR), no_input=True, output_dir=str(out), config_file=str(cookiecutter_config)
        )
    )
    install = run_make(project, "install", INSTALL_TIMEOUT_SECONDS)
    assert install.returncode == 0, tail(install)
    assert (project / ".venv/bin/pytest").exists()
    return project


def test_generated_project_installs_and_passes_its_own_suite(installed_project: Path) -> None:
    project = installed_project
    suite = run_make(project, "test", TEST_TIMEOUT_SECONDS)
    assert suite.returncode == 0, tail(suite)
    passed = re.search(r"\b(\d+) passed\b", suite.stdout)
    assert passed, tail(suite)
    assert int(passed.group(1)) > 0
    assert not re.search(r"\b\d+ (failed|errors?)\b", suite.stdout), tail(suite)


def test_a_new_user_walks_both_data_paths(installed_project: Path) -> None:
    """README's native development, as processes: a device's status reaches a logged-in browser's WebSocket,
    and mqtt_publisher.publish reaches the device (tests/walkthrough/new_user.py says how)."""
    walkthrough = Path(__file__).parent / "walkthrough" / "new_user.py"
    result = subprocess.run(
        [str(installed_project / ".venv/bin/python"), str(walkthrough)],
        cwd=installed_project,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    logs = "".join(
        f"--- {log.name} ---\n{log.read_text()[-3000:]}\n"
        for log in sorted(installed_project.glob("walkthrough-*.log"))
    )
    assert result.returncode == 0, tail(result) + logs
    assert "walkthrough: ok" in result.stdout


# The device tests that depend on the answered hashing algorithm: hashing, the admin form, the provisioning
# commands and the exact query EMQX runs against Postgres.
HASHING_TESTS = (
    "tests/test_passwords.py",
    "tests/test_admin_devices.py",
    "tests/test_devices_commands.py",
    "tests/test_devices_emqx_query.py",
)


@pytest.mark.parametrize("algorithm", ["pbkdf2", "bcrypt"])
def test_other_hashing_answers_pass_their_device_tests(
    installed_project: Path, bake_project, algorithm: str
) -> None:
    """Same pinned dependencies as the defaults, so the installed .venv serves these bakes too."""
    project = bake_project({"device_password_hash": algorithm})
    suite = subprocess.run(
        [str(installed_project / ".venv/bin/pytest"), "-q", *HASHING_TESTS],
        cwd=project,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=TEST_TIMEOUT_SECONDS,
        check=False,
    )
    assert suite.returncode == 0, tail(suite)
    assert re.search(r"\b\d+ passed\b", suite.stdout), tail(suite)
