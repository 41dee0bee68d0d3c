"""Remove what an answer turned off, so the generated project has no dead files, settings or dependencies."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from answers import Answers
from lockfile import LockError, canonical, prune_project_locks

_FLOWER_SETTING = re.compile(r"^\s*#?\s*FLOWER_[A-Z_]*=", re.IGNORECASE)
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _drop_lines(path: Path, pattern: re.Pattern[str]) -> None:
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not pattern.search(line)]
    if kept != lines:
        path.write_text("".join(kept), encoding="utf-8")


def unneeded_requirements(answers: Answers) -> set[str]:
    """Requirements of the template that these answers do not use."""
    unneeded = set()
    if not answers.use_flower:
        unneeded.add("flower")
    if answers.password_hash.algorithm != "bcrypt":
        unneeded.add("bcrypt")
    return unneeded


def _drop_requirements(path: Path, names: set[str]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        match = _REQUIREMENT_NAME.match(line)
        if not (match and canonical(match.group(1)) in names):
            kept.append(line)
    path.write_text("".join(kept), encoding="utf-8")


# Caches of tools run inside a checkout of the template (cookiecutter.json copies them without rendering).
TOOL_CACHES = (".ruff_cache", ".pytest_cache", ".hypothesis", "__pycache__")


def remove_tool_caches(project: Path) -> None:
    for name in TOOL_CACHES:
        for cache in sorted(project.rglob(name), reverse=True):
            if cache.is_dir():
                shutil.rmtree(cache)
    for compiled in project.rglob("*.pyc"):
        compiled.unlink()


def prune(project: Path, answers: Answers) -> None:
    remove_tool_caches(project)
    if not answers.use_flower:
        (project / "compose/django/start-flower.sh").unlink(missing_ok=True)
        _drop_lines(project / ".env.example", _FLOWER_SETTING)
    if answers.password_hash.algorithm != "bcrypt":
        (project / "src/apps/devices/bcrypt_passwords.py").unlink(missing_ok=True)
        (project / "tests/test_passwords_bcrypt.py").unlink(missing_ok=True)
    _drop_requirements(project / "requirements.in", unneeded_requirements(answers))
    try:
        prune_project_locks(project)
    except LockError as error:
        raise SystemExit(
            f"The template's requirements*.in and its locks disagree ({error}): `make lock` in the template."
        ) from None
