"""Running a baked project's own commands (make install, make test, its venv's tools) as a user would, with
one pip and uv cache shared by every bake and run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Installing the locked dependencies and running a suite against real services takes minutes, not seconds.
INSTALL_TIMEOUT_SECONDS = 1800
TEST_TIMEOUT_SECONDS = 1800
# The uv pinned with the template's tools: `make install UV=<this>` installs a bake's lock in seconds.
TEMPLATE_UV = Path(sys.executable).with_name("uv")


def project_env() -> dict[str, str]:
    """The caller's environment (so POSTGRES_HOST etc. can point elsewhere), minus this suite's own venv."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTEST_ADDOPTS", None)
    # Reuse one wheel cache across bakes and runs instead of downloading the dependencies every time.
    cache = Path.home() / ".cache"
    env.setdefault("PIP_CACHE_DIR", str(cache / "pip"))
    env.setdefault("UV_CACHE_DIR", str(cache / "uv"))
    return env


def run_make(
    project: Path, *args: str, timeout: int = INSTALL_TIMEOUT_SECONDS, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *args],
        cwd=project,
        env=env or project_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tail(result: subprocess.CompletedProcess[str], chars: int = 6000) -> str:
    return f"--- stdout ---\n{result.stdout[-chars:]}\n--- stderr ---\n{result.stderr[-chars:]}"
