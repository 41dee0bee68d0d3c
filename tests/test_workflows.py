"""GitHub Actions workflows and Dependabot configs of the template and of the bakes: they pass actionlint's
checks (jactionlint's `correctness` profile, with shellcheck over every run: script), follow the answers, and
the parts that can run here do what CI relies on. Pre-commit configs stay offline (local hooks only)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bake_variants import VARIANTS, read_env, run_in

TEMPLATE = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKFLOW_VARIANTS = {
    "defaults": VARIANTS["defaults"],
    "no_flower": VARIANTS["edges_qos2_pbkdf2"],
    "other_images": {"python_version": "3.13", "postgres_version": "17", "redis_version": "8"},
}


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "jactionlint"),
            "--profile",
            "correctness",
            f"--shellcheck={BIN / 'shellcheck'}",
            "--no-color",
        ]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path) -> None:
    """The checker bites: an unknown action input and an unquoted variable in a script are findings."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v5\n        with:\n          fetch-dept: 1\n"
        "      - run: echo $HOME\n"
    )
    result = actionlint(broken)
    assert result.returncode != 0
    assert "fetch-dept" in result.stdout
    assert "SC2086" in result.stdout


def test_template_workflow_passes_actionlint_and_runs_make_test() -> None:
    workflow = TEMPLATE / ".github/workflows/ci.yml"
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = yaml.safe_load(workflow.read_text())["jobs"]["test"]["steps"]
    assert [step["run"] for step in steps if step.get("run") in ("make lint", ".ci/run")] == [
        "make lint",
        ".ci/run",
    ]
    assert "exec make test" in (TEMPLATE / ".ci/run").read_text()


@pytest.fixture(scope="module", params=sorted(WORKFLOW_VARIANTS))
def baked(request: pytest.FixtureRequest, bake_project) -> tuple[str, Path]:
    return request.param, bake_project(WORKFLOW_VARIANTS[request.param])


def test_project_workflow_and_dependabot_pass_actionlint(baked) -> None:
    _, project = baked
    result = actionlint(project / ".github/workflows/ci.yml", project / ".github/dependabot.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_project_workflow_tests_against_the_three_services(baked) -> None:
    variant, project = baked
    answers = {
        "python_version": "3.12",
        "postgres_version": "16",
        "redis_version": "7",
        **WORKFLOW_VARIANTS[variant],
    }
    job = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"]["test"]
    images = {name: service["image"] for name, service in job["services"].items()}
    assert images == {
        "postgres": f"postgres:{answers['postgres_version']}",
        "redis": f"redis:{answers['redis_version']}",
        "mosquitto": "eclipse-mosquitto:2",
    }
    setup_python = next(
        step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@")
    )
    assert setup_python["with"]["python-version"] == answers["python_version"]
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs[-3:] == ["make install", "make lint", "make test"]
    # The suite reads these names (tests/test.env lists them); the job points them at the containers.
    test_env = read_env(project / "tests/test.env")
    for name in (
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_USER",
        "REDIS_HOST",
        "REDIS_PORT",
        "MQTT_BROKER_HOST",
    ):
        assert name in test_env and job["env"][name], name
    broker_step = next(step["run"] for step in job["steps"] if "mosquitto.conf" in step.get("run", ""))
    assert "tests/mosquitto.conf" in broker_step and (project / "tests/mosquitto.conf").is_file()


def test_project_workflow_throwaway_env_loads_both_compose_files(baked, tools, tmp_path: Path) -> None:
    """The images job's first script writes a .env that Compose accepts (every secret set)."""
    _, project = baked
    steps = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"]["images"]["steps"]
    script = next(step["run"] for step in steps if step.get("name") == "Throwaway .env")
    checkout = tmp_path / "checkout"
    shutil.copytree(project, checkout, ignore=shutil.ignore_patterns(".env", ".venv"))
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=checkout, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    env = read_env(checkout / ".env")
    assert set(env) == set(read_env(project / ".env.example"))
    assert all(env.values()), "an empty value is left"
    for compose_file in ("docker-compose.infra.yml", "docker-compose.app.yml"):
        check = run_in(checkout, str(tools.docker_compose), "-f", compose_file, "config", "--quiet")
        assert check.returncode == 0, check.stderr
    app = yaml.safe_load((checkout / "docker-compose.app.yml").read_text())
    assert "build" in app["services"]["django-app"], "the images job builds django-app"


def test_dependabot_watches_pip_docker_and_actions(bake_project) -> None:
    project = bake_project({})
    updates = yaml.safe_load((project / ".github/dependabot.yml").read_text())["updates"]
    directories = {update["package-ecosystem"]: update["directory"].strip("/") for update in updates}
    assert set(directories) == {"pip", "docker", "github-actions"}
    assert (project / directories["pip"] / "requirements.in").is_file()
    assert (project / directories["docker"] / "Dockerfile").is_file()
    assert (project / ".github/workflows").is_dir()


@pytest.mark.parametrize("config_dir", [".", "{{cookiecutter.project_slug}}"], ids=["template", "project"])
def test_pre_commit_hooks_are_local_and_offline(config_dir: str) -> None:
    """Only local hooks: nothing is cloned or downloaded, so the checks run offline and match CI's."""
    config = TEMPLATE / config_dir / ".pre-commit-config.yaml"
    validate = subprocess.run(
        [str(BIN / "pre-commit"), "validate-config", str(config)], capture_output=True, text=True, check=False
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    repos = yaml.safe_load(config.read_text())["repos"]
    assert [repo["repo"] for repo in repos] == ["local"]
    for hook in repos[0]["hooks"]:
        assert hook["language"] in ("system", "fail", "pygrep"), hook["id"]
        assert "additional_dependencies" not in hook, hook["id"]


def test_template_pre_commit_tools_are_in_its_venv() -> None:
    config = yaml.safe_load((TEMPLATE / ".pre-commit-config.yaml").read_text())
    for hook in config["repos"][0]["hooks"]:
        program = hook["entry"].split()[0]
        assert program.startswith(".venv/bin/") and (BIN / Path(program).name).exists(), hook["id"]
