"""Generated projects can be created and kept up to date the ways users do it: cruft and plain cookiecutter,
from a local path, a git URL, a zip and a replay file, all driven through the real command-line tools against
a temporary git clone of this template (its working tree as it is now)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from bake_variants import module_constants, read_env
from emqx_authz_model import consult

TEMPLATE = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT_IDENTITY = ["-c", "user.name=Template Test", "-c", "user.email=test@example.com"]


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{argv}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    return result


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    return run(["git", *GIT_IDENTITY, *args], cwd, env).stdout


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user's environment of its own: cookiecutter's clones and replay files stay in tmp_path."""
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(
        yaml.safe_dump(
            {"cookiecutters_dir": str(tmp_path / "cookiecutters"), "replay_dir": str(tmp_path / "replay")}
        )
    )
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "COOKIECUTTER_CONFIG": str(config),
        "GIT_CONFIG_NOSYSTEM": "1",
        "LANG": "C.UTF-8",
    }


@pytest.fixture
def template_repo(tmp_path: Path, env: dict[str, str]) -> Path:
    """A git repository holding this template's working tree (tracked and new files, minus ignored ones)."""
    repo = tmp_path / "template"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=TEMPLATE,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE / name
        if source.is_file():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(repo, env, "init", "-q", "-b", "main")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "-m", "template")
    return repo


def tree(project: Path) -> dict[str, bytes]:
    """The generated files, minus what is expected to differ between two creations."""
    skipped = {".env", ".cruft.json"}
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and path.name not in skipped and ".git" not in path.relative_to(project).parts
    }


@pytest.fixture
def cruft_project(tmp_path: Path, env: dict[str, str], template_repo: Path) -> Path:
    """A project made with `cruft create` and committed to git, as a user starts one."""
    run(
        ["cruft", "create", "--no-input", "--output-dir", str(tmp_path / "out"), str(template_repo)],
        tmp_path,
        env,
    )
    project = tmp_path / "out" / "iot_backend"
    git(project, env, "init", "-q", "-b", "main")
    git(project, env, "add", "-A")
    git(project, env, "commit", "-q", "-m", "generated")
    return project


@pytest.mark.parametrize("source", ["path", "git_url"])
def test_cruft_create_then_check_and_diff_are_clean(
    tmp_path: Path, env: dict[str, str], template_repo: Path, source: str
) -> None:
    template = str(template_repo) if source == "path" else template_repo.as_uri()
    run(["cruft", "create", "--no-input", "--output-dir", str(tmp_path / "out"), template], tmp_path, env)
    project = tmp_path / "out" / "iot_backend"
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == git(template_repo, env, "rev-parse", "HEAD").strip()
    assert (project / "compose/emqx/acl.conf").is_file() and (project / ".env").is_file()
    run(["cruft", "check"], project, env)
    diff = run(["cruft", "diff", "--exit-code"], project, env)
    assert diff.stdout == "", diff.stdout


def test_plain_cookiecutter_from_path_git_url_zip_and_replay_gives_the_same_project(
    tmp_path: Path, env: dict[str, str], template_repo: Path
) -> None:
    archive = shutil.make_archive(str(tmp_path / "template"), "zip", root_dir=tmp_path, base_dir="template")
    sources = {
        "path": [str(template_repo)],
        "git_url": ["git+" + template_repo.as_uri()],
        "zip": [archive],
        "replay": ["--replay", str(template_repo)],
    }
    trees: dict[str, dict[str, bytes]] = {}
    for name, argv in sources.items():
        out = tmp_path / f"out-{name}"
        no_input = [] if name == "replay" else ["--no-input"]
        run(["cookiecutter", *no_input, "--output-dir", str(out), *argv], tmp_path, env)
        trees[name] = tree(out / "iot_backend")
        assert read_env(out / "iot_backend/.env")["DJANGO_SECRET_KEY"]
    assert trees["path"], "the bake wrote files"
    for name, files in trees.items():
        assert files == trees["path"], f"{name} bake differs from the path bake"


def commit_template_change(repo: Path, env: dict[str, str], edit: Callable[[Path], None]) -> str:
    edit(repo)
    git(repo, env, "commit", "-q", "-am", "a newer template")
    return git(repo, env, "rev-parse", "HEAD").strip()


def test_cruft_update_applies_a_newer_template_to_an_untouched_project(
    env: dict[str, str], template_repo: Path, cruft_project: Path
) -> None:
    env_before = (cruft_project / ".env").read_bytes()

    def edit(repo: Path) -> None:
        readme = repo / "{{cookiecutter.project_slug}}/README.md"
        readme.write_text(readme.read_text() + "\nA line the newer template adds.\n")
        # A change to a derived file: the EMQX session queue length written into the infra compose file.
        derive = repo / "hooks/derive_emqx.py"
        derive.write_text(derive.read_text().replace("MAX_MQUEUE_LEN = 10000", "MAX_MQUEUE_LEN = 20000"))

    newer = commit_template_change(template_repo, env, edit)
    run(["cruft", "update", "--skip-apply-ask"], cruft_project, env)
    assert "A line the newer template adds." in (cruft_project / "README.md").read_text()
    infra = yaml.safe_load((cruft_project / "docker-compose.infra.yml").read_text())
    assert infra["services"]["emqx"]["environment"]["EMQX_MQTT__MAX_MQUEUE_LEN"] == "20000"
    emqx_manifest = (cruft_project / "deploy/kubernetes/base/emqx.yaml").read_text()
    assert "value: '20000'" in emqx_manifest, "the Kubernetes EMQX nodes follow the same derivation"
    assert json.loads((cruft_project / ".cruft.json").read_text())["commit"] == newer
    assert (cruft_project / ".env").read_bytes() == env_before, ".env must never be touched"
    assert not list(cruft_project.rglob("*.rej")), "the update did not apply cleanly"
    # cruft applies the update with `git apply -3`, which stages it.
    changed = set(git(cruft_project, env, "diff", "HEAD", "--name-only").split())
    assert changed == {
        "README.md",
        "docker-compose.infra.yml",
        "deploy/kubernetes/base/emqx.yaml",
        ".cruft.json",
    }
    run(["cruft", "check"], cruft_project, env)
    assert run(["cruft", "diff", "--exit-code"], cruft_project, env).stdout == ""


def test_changing_an_answer_through_cruft_regenerates_every_derived_file(
    env: dict[str, str], cruft_project: Path
) -> None:
    env_before = (cruft_project / ".env").read_bytes()
    answers = {
        "device_message_kinds": "telemetry,status",
        "mqtt_handler_replicas": 2,
        "command_topic_prefix": "down",
        "device_password_hash": "pbkdf2",
        "emqx_nodes": 3,
    }
    run(
        ["cruft", "update", "--skip-apply-ask", "--variables-to-update", json.dumps(answers)],
        cruft_project,
        env,
    )
    topology = module_constants(cruft_project / "src/apps/mqtt_service/topology.py")
    assert topology["DEVICE_MESSAGE_KINDS"] == ("telemetry", "status")
    assert topology["COMMAND_TOPIC_PREFIX"] == "down"
    topics = {
        topic
        for rule in consult(cruft_project / "compose/emqx/acl.conf")
        if len(rule) == 4
        for topic in rule[3]
    }
    assert {"from_device/${username}/telemetry", "down/${username}", "down/+"} <= topics
    assert "from_device/${username}/event" not in topics
    infra = yaml.safe_load((cruft_project / "docker-compose.infra.yml").read_text())
    nodes = [f"emqx-{index}" for index in (1, 2, 3)]
    assert {*nodes, "emqx-lb"} <= set(infra["services"]) and "emqx" not in infra["services"]
    assert all(
        "name = pbkdf2" in infra["services"][node]["environment"]["EMQX_AUTHENTICATION"] for node in nodes
    )
    assert "server node3 node3.emqx.local:1883" in (cruft_project / "compose/haproxy/haproxy.cfg").read_text()
    kubernetes = cruft_project / "deploy/kubernetes/base"
    assert (kubernetes / "emqx/acl.conf").read_bytes() == (
        cruft_project / "compose/emqx/acl.conf"
    ).read_bytes()
    statefulsets = {
        document["metadata"]["name"]: document["spec"]["replicas"]
        for name in ("emqx.yaml", "mqtt-handler.yaml")
        for document in yaml.safe_load_all((kubernetes / name).read_text())
        if document["kind"] == "StatefulSet"
    }
    assert statefulsets == {"iot-backend-emqx": 3, "iot-backend-mqtt-handler": 2}
    assert module_constants(cruft_project / "src/apps/devices/password_scheme.py")["ALGORITHM"] == "pbkdf2"
    app = yaml.safe_load((cruft_project / "docker-compose.app.yml").read_text())
    assert {"mqtt-handler-1", "mqtt-handler-2"} <= set(app["services"])
    assert "`down/<username>`" in (cruft_project / "README.md").read_text()
    state = json.loads((cruft_project / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert state["device_message_kinds"] == "telemetry,status"
    assert (cruft_project / ".env").read_bytes() == env_before, ".env must never be touched"
    assert not list(cruft_project.rglob("*.rej"))
    assert run(["cruft", "diff", "--exit-code"], cruft_project, env).stdout == ""


def test_hooks_need_no_linux_only_lookup() -> None:
    for hook in (TEMPLATE / "hooks").glob("*.py"):
        text = hook.read_text()
        assert "/proc" not in text and "_repo_dir" not in text, hook.name


def test_tool_caches_in_a_checkout_neither_break_a_bake_nor_end_up_in_it(
    tmp_path: Path, env: dict[str, str], template_repo: Path
) -> None:
    """ruff, pytest or Python run inside the template folder leave binary caches there."""
    project_template = template_repo / "{{cookiecutter.project_slug}}"
    for cache in (".ruff_cache/0.17.6", "src/apps/__pycache__", ".pytest_cache/v"):
        (project_template / cache).mkdir(parents=True)
        (project_template / cache / "blob.pyc").write_bytes(bytes(range(256)) * 8)
    run(
        ["cookiecutter", "--no-input", "--output-dir", str(tmp_path / "out"), str(template_repo)],
        tmp_path,
        env,
    )
    project = tmp_path / "out" / "iot_backend"
    assert (project / "src/config/settings.py").is_file()
    left = [p for p in project.rglob("*") if p.name in {".ruff_cache", "__pycache__", ".pytest_cache"}]
    assert not left and not list(project.rglob("*.pyc"))
