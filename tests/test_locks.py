"""The locks: requirements*.txt of the template and of the generated project list the whole dependency tree
with hashes and agree with the declared requirements*.in; a bake keeps exactly what its answers need; the
lock installs hash-checked into a fresh venv (pip for the defaults, uv for other answers) and `make lock` in a
bake writes it again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bake_variants import VARIANTS, expected
from project_runs import TEMPLATE_UV, run_make, tail

TEMPLATE = Path(__file__).resolve().parents[1]
PROJECT_DIR = TEMPLATE / "{{cookiecutter.project_slug}}"
sys.path.insert(0, str(TEMPLATE / "hooks"))
sys.dont_write_bytecode = True

from lockfile import LOCKS, Lock, check_declared, parse_lock, prune  # noqa: E402


def read_lock(path: Path) -> Lock:
    return parse_lock(path.read_text(encoding="utf-8"))


def assert_complete(directory: Path, source: str, lock_name: str, constraints: dict[str, set[str]]) -> Lock:
    """The lock is uv's universal, hashed output for source, locks every declared requirement at its pin and
    holds nothing that the declared requirements do not pull in."""
    lock = read_lock(directory / lock_name)
    command = " ".join(lock.header)
    assert "uv pip compile --universal --python-version 3.11 --generate-hashes" in command, command
    unhashed = [e.name for e in lock.entries if not any("--hash=sha256:" in line for line in e.lines)]
    assert not unhashed
    assert check_declared(lock, lock_name, directory / source) == []
    orphans = {e.name for e in lock.entries} - {e.name for e in prune(lock, directory, constraints).entries}
    assert not orphans, f"{lock_name} holds what {source} does not pull in: {sorted(orphans)}"
    return lock


def assert_project_locks_complete(directory: Path) -> dict[str, Lock]:
    constraints: dict[str, set[str]] = {}
    locks = {}
    for source, lock_name in LOCKS:
        locks[lock_name] = assert_complete(directory, source, lock_name, constraints)
        constraints[lock_name] = set(locks[lock_name].versions())
    runtime, dev = locks["requirements.txt"].versions(), locks["requirements-dev.txt"].versions()
    assert {name: dev[name] for name in runtime} == runtime, (
        "dev and runtime locks differ on a runtime package"
    )
    return locks


def test_template_tools_lock_agrees_with_requirements_dev_in() -> None:
    assert_complete(TEMPLATE, "requirements-dev.in", "requirements-dev.txt", {})


def test_generated_project_locks_agree_with_their_in_files() -> None:
    """Fails when someone edits a requirements*.in without `make lock` (or a lock by hand)."""
    locks = assert_project_locks_complete(PROJECT_DIR)
    # The template locks every optional requirement; the hook cuts them out of the bakes that do not use them.
    assert {"bcrypt", "flower"} <= set(locks["requirements.txt"].versions())


def test_template_and_project_lock_with_the_same_uv() -> None:
    """The template's `make lock` runs the project's lock commands with the template's uv."""

    def uv_pin(path: Path) -> str:
        (line,) = [line for line in path.read_text().splitlines() if line.startswith("uv==")]
        return line

    assert uv_pin(TEMPLATE / "requirements-dev.in") == uv_pin(PROJECT_DIR / "requirements-dev.in")


def copy_project_requirements(target: Path) -> Path:
    for path in PROJECT_DIR.glob("requirements*"):
        shutil.copy(path, target / path.name)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_checks_catch_a_lock_that_disagrees(tmp_path: Path) -> None:
    project = copy_project_requirements(tmp_path)
    runtime = read_lock(project / "requirements.txt")
    django = next(e.version for e in runtime.entries if e.name == "django")

    edit(project / "requirements-dev.in", "pytest==", "unlocked-example==1.0\npytest==")
    problems = check_declared(
        read_lock(project / "requirements-dev.txt"), "requirements-dev.txt", project / "requirements-dev.in"
    )
    assert problems == ["requirements-dev.in declares unlocked-example, which requirements-dev.txt lacks"]

    edit(project / "requirements.in", f"django=={django}", "django==5.2.0")
    problems = check_declared(runtime, "requirements.txt", project / "requirements.in")
    assert problems == [f"requirements.in pins django==5.2.0, requirements.txt has {django}"]

    edit(project / "requirements.in", "whitenoise==", "# whitenoise==")
    kept = {e.name for e in prune(runtime, project, {}).entries}
    assert "whitenoise" not in kept, "a requirement dropped from requirements.in must leave the lock"


def test_a_bake_of_a_template_whose_locks_disagree_fails_clearly(
    tmp_path: Path, cookiecutter_config: Path
) -> None:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=shutil.ignore_patterns(".venv", ".git", ".cache", "*_cache"))
    runtime_in = template / PROJECT_DIR.name / "requirements.in"
    edit(runtime_in, "whitenoise==", "unlocked-example==1.0\nwhitenoise==")
    bake = [sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", str(cookiecutter_config)]
    result = subprocess.run(
        [*bake, "-o", str(tmp_path / "out"), str(template)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "requirements.in declares unlocked-example, which requirements.txt lacks" in result.stderr
    assert "make lock" in result.stderr
    assert not (tmp_path / "out" / "iot_backend").exists(), "a failed bake leaves nothing behind"


@pytest.mark.parametrize(
    "variant", ["defaults", "edges_qos0_bcrypt", "edges_qos2_pbkdf2", "emqx_cluster_5_replicas"]
)
def test_a_bake_locks_exactly_what_its_answers_need(bake_project, variant: str) -> None:
    want = expected(variant)
    project = bake_project(VARIANTS[variant])
    locks = assert_project_locks_complete(project)
    for lock_name, lock in locks.items():
        names = set(lock.versions())
        assert ("bcrypt" in names) == (want["device_password_hash"] == "bcrypt"), lock_name
        assert ("flower" in names) == want["use_flower"], lock_name
    runtime = {e.name for e in locks["requirements.txt"].entries}
    full = {e.name for e in read_lock(PROJECT_DIR / "requirements.txt").entries}
    if want["use_flower"] and want["device_password_hash"] == "bcrypt":
        assert runtime == full


# Run with the bake's own Python: which lock entries apply on this platform (markers), and what is installed.
_INSTALLED_VS_LOCK = r"""
import importlib.metadata, json, re, sys
from packaging.markers import Marker
from packaging.utils import canonicalize_name
wanted = {}
for line in open(sys.argv[1], encoding="utf-8"):
    if line[:1].isalnum():
        spec, _, marker = line.rstrip(" \\\n").partition(";")
        name, _, version = spec.strip().partition("==")
        if not marker.strip() or Marker(marker.strip()).evaluate():
            wanted[canonicalize_name(re.sub(r"\[.*\]", "", name))] = version
installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
seeds = {"pip", "setuptools", "wheel"} - set(wanted)
print(json.dumps({"wanted": wanted, "installed": {k: v for k, v in installed.items() if k not in seeds}}))
"""


def without_hashes(text: str) -> list[str]:
    """A lock's text minus its hashes: PyPI may add a wheel to an old release, which is not a disagreement."""
    return [line.rstrip(" \\") for line in text.splitlines() if "--hash=" not in line]


@pytest.mark.parametrize("variant", ["defaults", "edges_qos0_bcrypt", "edges_qos2_pbkdf2"])
def test_the_lock_installs_hash_checked_and_make_lock_writes_it_again(
    variant: str, installed_project: Path, install_with_uv
) -> None:
    """defaults: the suite's one `make install` without uv (pip --require-hashes); the others through uv."""
    project = installed_project if variant == "defaults" else install_with_uv(VARIANTS[variant])
    check = subprocess.run(
        [str(project / ".venv/bin/python"), "-c", _INSTALLED_VS_LOCK, str(project / "requirements-dev.txt")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    found = json.loads(check.stdout)
    assert found["installed"] == found["wanted"]
    consistent = subprocess.run(
        [str(project / ".venv/bin/python"), "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    assert consistent.returncode == 0, consistent.stdout

    locks = {name: (project / name).read_text() for _, name in LOCKS}
    try:
        relock = run_make(project, "lock")
        assert relock.returncode == 0, tail(relock)
        for name, text in locks.items():
            assert without_hashes((project / name).read_text()) == without_hashes(text), name
    finally:
        for name, text in locks.items():
            (project / name).write_text(text)


@pytest.mark.parametrize("uv", ["", str(TEMPLATE_UV)], ids=["pip", "uv"])
def test_make_install_refuses_a_package_whose_hash_is_not_in_the_lock(
    bake_project, tmp_path: Path, uv: str
) -> None:
    """The generated Makefile's install, on a lock of one package whose hash was tampered with."""
    shutil.copy(bake_project({}) / "Makefile", tmp_path / "Makefile")
    (tmp_path / "requirements-dev.txt").write_text(
        "six==1.17.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via -r requirements-dev.in\n"
    )
    install = run_make(tmp_path, "install", f"UV={uv}", timeout=300)
    assert install.returncode != 0, tail(install)
    assert "hash" in (install.stdout + install.stderr).lower(), tail(install)
    installed = subprocess.run(
        [str(tmp_path / ".venv/bin/python"), "-c", "import six"], capture_output=True, check=False
    )
    assert installed.returncode != 0, "six was installed despite the wrong hash"
