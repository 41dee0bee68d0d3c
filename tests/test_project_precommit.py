"""The generated project's pre-commit checks, in a git repository made from a fresh bake of the defaults (its
.venv from `make install`): `make lint` passes, and a commit of secrets, a large file or a model change
without its migration is refused, offline, with no secret printed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from bake_variants import read_env
from project_runs import project_env, run_make, tail


@pytest.fixture(scope="module")
def git_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No user or system git config, a private pre-commit home: a developer's setup cannot flip a result."""
    return {
        **project_env(),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit-home")),
    }


def git(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def repository(installed_project: Path, git_env: dict[str, str]) -> Iterator[Path]:
    """The installed bake, committed as a new user would, with the hooks installed (`pre-commit install`)."""
    project = installed_project
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "Generated project")):
        result = git(project, git_env, *args)
        assert result.returncode == 0, tail(result)
    install = subprocess.run(
        [str(project / ".venv/bin/pre-commit"), "install"],
        cwd=project,
        env=git_env,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, tail(install)
    yield project
    shutil.rmtree(project / ".git")


def test_make_lint_passes_on_a_fresh_bake(repository: Path, git_env: dict[str, str]) -> None:
    lint = run_make(repository, "lint", env=git_env)
    assert lint.returncode == 0, tail(lint)
    for hook in ("ruff format", "ruff check", "migrations match the models", "hadolint (Dockerfile)"):
        assert any(line.startswith(hook) and line.endswith("Passed") for line in lint.stdout.splitlines()), (
            hook
        )


def assert_commit_refused(project: Path, env: dict[str, str], hook: str) -> str:
    head = git(project, env, "rev-parse", "HEAD").stdout
    commit = git(project, env, "commit", "-m", "should be refused")
    output = commit.stdout + commit.stderr
    assert commit.returncode != 0, output
    assert f"- hook id: {hook}" in output, output
    assert git(project, env, "rev-parse", "HEAD").stdout == head
    return output


@pytest.fixture
def clean_index(repository: Path, git_env: dict[str, str]) -> Iterator[Path]:
    """Whatever a test stages or changes is undone, so the next one starts from the committed bake."""
    yield repository
    # Unstage, restore tracked files, remove new ones; ignored files (.env, .venv) stay.
    for args in (("reset", "-q"), ("checkout", "-q", "--", "."), ("clean", "-q", "-f")):
        assert git(repository, git_env, *args).returncode == 0


def test_a_commit_of_dotenv_is_refused_without_printing_its_secrets(
    clean_index: Path, git_env: dict[str, str]
) -> None:
    project = clean_index
    secrets = [value for name, value in read_env(project / ".env").items() if "PASSWORD" in name and value]
    dotenv = (project / ".env").read_bytes()
    assert git(project, git_env, "add", "-f", ".env").returncode == 0
    output = assert_commit_refused(project, git_env, "env-files")
    assert (project / ".env").read_bytes() == dotenv
    assert secrets and not any(secret in output for secret in secrets)


def test_a_copy_of_the_secrets_under_another_name_is_refused(
    clean_index: Path, git_env: dict[str, str]
) -> None:
    project = clean_index
    shutil.copy(project / ".env", project / "settings-backup.txt")
    assert git(project, git_env, "add", "settings-backup.txt").returncode == 0
    output = assert_commit_refused(project, git_env, "filled-secrets")
    assert "settings-backup.txt" in output
    secret_key = read_env(project / ".env")["DJANGO_SECRET_KEY"]
    assert secret_key not in output


def test_a_large_file_is_refused(clean_index: Path, git_env: dict[str, str]) -> None:
    project = clean_index
    (project / "dump.bin").write_bytes(b"\0" * 600_000)
    assert git(project, git_env, "add", "dump.bin").returncode == 0
    assert_commit_refused(project, git_env, "large-files")


def test_a_model_change_without_its_migration_is_refused(clean_index: Path, git_env: dict[str, str]) -> None:
    project = clean_index
    models = project / "src/apps/devices/models.py"
    text = models.read_text()
    anchor = '    salt = models.CharField(max_length=64, blank=True, default="")\n'
    assert anchor in text
    models.write_text(
        text.replace(anchor, anchor + '    firmware = models.CharField(max_length=32, default="")\n')
    )
    assert git(project, git_env, "add", str(models)).returncode == 0
    output = assert_commit_refused(project, git_env, "migrations")
    assert "firmware" in output
