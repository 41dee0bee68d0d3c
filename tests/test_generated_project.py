"""Run generated projects' own suites, as users would, against the PostgreSQL, Redis and MQTT broker the
environment points at (by default the services on 127.0.0.1 named in the generated tests/test.env).

The defaults are baked and installed with their own `make install` and `make test` (slow fault tests
included). Every other bake of the template suite (tests/bake_variants.py) then runs its suite with that
virtual environment when its lock is a subset of the defaults' (pbkdf2, no Flower...), or else in a .venv of
its own installed from its lock with uv (bcrypt): once per distinct generated code, since two bakes whose
src/, tests/ and pyproject.toml are byte for byte the same run the same suite. The runs go at the same time;
each mostly waits on real services, not on the CPU."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from bake_variants import VARIANTS, expected
from project_runs import TEST_TIMEOUT_SECONDS, project_env, tail

CONCURRENT_SUITES = 3
# The other bakes whose fault tests (marked slow, about a minute) run too: custom kinds and topics change what
# they publish and subscribe to.
SLOW_TESTS_ALSO_FOR = {"acme_fleet"}
WALKTHROUGH = Path(__file__).parent / "walkthrough" / "new_user.py"


def run(argv: list[str], project: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=project, env=project_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_suite_passed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, tail(result)
    passed = re.search(r"\b(\d+) passed\b", result.stdout)
    assert passed and int(passed.group(1)) > 0, tail(result)
    assert not re.search(r"\b\d+ (failed|errors?)\b", result.stdout), tail(result)


def test_generated_project_installs_and_passes_its_own_suite(installed_project: Path) -> None:
    result = run(["make", "test"], installed_project, TEST_TIMEOUT_SECONDS)
    assert_suite_passed(result)
    # The defaults' run is where the browser test must run (`make test` installs Chromium when it can):
    # the suite's -ra summary names every skipped test.
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert not [line for line in skipped if "test_dashboard_browser" in line], "\n".join(skipped)


def code_fingerprint(project: Path) -> str:
    """What a generated suite's outcome depends on: the code it runs and tests, and its settings."""
    digest = hashlib.sha256()
    files = [project / "pyproject.toml"]
    files += sorted((project / "src").rglob("*")) + sorted((project / "tests").rglob("*"))
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def locked(project: Path) -> set[str]:
    """The requirement lines (name==version and markers) of a bake's dev lock."""
    return {
        line.rstrip(" \\")
        for line in (project / "requirements-dev.txt").read_text().splitlines()
        if line[:1].isalnum()
    }


@pytest.fixture(scope="session")
def variant_suites(
    installed_project: Path, bake_project, install_with_uv
) -> Callable[[str], tuple[str, Future]]:
    """variant -> (the variant whose run stands for it, that run's future). All runs start on first use."""
    baked = {name: bake_project(answers) for name, answers in VARIANTS.items() if name != "defaults"}
    first_with: dict[str, str] = {code_fingerprint(installed_project): "defaults"}
    runs: dict[str, Future] = {}
    pool = ThreadPoolExecutor(max_workers=CONCURRENT_SUITES, thread_name_prefix="generated-suite")
    for name, project in baked.items():
        owner = first_with.setdefault(code_fingerprint(project), name)
        if owner == name:
            venv = installed_project / ".venv"
            if not locked(project) <= locked(installed_project):
                # It locks a package the defaults do not (bcrypt): its own .venv, from its own lock.
                project = baked[name] = install_with_uv(VARIANTS[name])
                venv = project / ".venv"
            # The browser test runs in the defaults' `make test` only: a real Chromium is costly per bake.
            selection = "not browser" if name in SLOW_TESTS_ALSO_FOR else "not slow and not browser"
            markers = ["-m", selection]
            argv = [str(venv / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *markers]
            runs[name] = pool.submit(run, argv, project, TEST_TIMEOUT_SECONDS)
    pool.shutdown(wait=False)
    return lambda variant: (first_with[code_fingerprint(baked[variant])], runs)


@pytest.mark.parametrize("variant", sorted(name for name in VARIANTS if name != "defaults"))
def test_every_bake_passes_its_own_suite(variant: str, variant_suites) -> None:
    owner, runs = variant_suites(variant)
    if owner != variant:
        pytest.skip(f"generated code identical to the {owner!r} bake, whose suite runs")
    assert_suite_passed(runs[variant].result())


@pytest.mark.parametrize("variant", ["defaults", "acme_fleet"])
def test_a_new_user_walks_both_data_paths(variant: str, installed_project: Path, bake_project) -> None:
    """README's native development, as processes: a device's message of every kind reaches a logged-in
    browser's WebSocket, and mqtt_publisher.publish reaches the device (tests/walkthrough/new_user.py)."""
    project = installed_project if variant == "defaults" else bake_project(VARIANTS[variant])
    result = run([str(installed_project / ".venv/bin/python"), str(WALKTHROUGH)], project, 300)
    logs = "".join(
        f"--- {log.name} ---\n{log.read_text()[-3000:]}\n"
        for log in sorted(project.glob("walkthrough-*.log"))
    )
    assert result.returncode == 0, tail(result) + logs
    assert "walkthrough: ok" in result.stdout


# Answers that only reach files no generated suite reads (packaging metadata, compose host ports, image tags).
NOT_IN_GENERATED_CODE = {
    "description",
    "author_name",
    "author_email",
    "version",
    "python_version",
    "postgres_version",
    "redis_version",
    "emqx_version",
}


def test_the_bakes_give_every_answer_another_value() -> None:
    """The bakes stand for one bake per answer: each answer that reaches the generated code takes a
    non-default value in at least one of them."""
    template_answers = json.loads((Path(__file__).parent.parent / "cookiecutter.json").read_text())
    questions = [name for name in template_answers if not name.startswith("_")]
    defaults = {**template_answers, **expected("defaults")}
    uncovered = [
        name
        for name in questions
        if name not in NOT_IN_GENERATED_CODE
        and not any(str(expected(v).get(name, defaults[name])) != str(defaults[name]) for v in VARIANTS)
    ]
    assert not uncovered, f"no suite runs with another value of {uncovered}"
