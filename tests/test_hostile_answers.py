"""Answers a real user may type (quotes, backslashes, `$`, backticks, non-ASCII, padding) are valid:
every file of the bake must still load with its own parser and hold the normalized value, not the raw one."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from bake_variants import compose_config, module_constants, read_env, run_in
from emqx_authz_model import consult
from markdown_it import MarkdownIt

TEMPLATE = Path(__file__).resolve().parents[1]
NAME = '  Acme "Fleet" \\ `ops` $HOME *bold* | ünïcødé 🚀  '
DESCRIPTION = "Say \"hi\" \\ to `$(touch pwned)` and ${HOME}; <b>not html</b> _x_ [link](y) 'q' 1. not a list"
AUTHOR = 'Seán O\'Brien "Dev" \\ Ünal'
HOSTILE = {
    "project_name": NAME,
    "project_slug": "acme_fleet",
    "description": DESCRIPTION,
    "author_name": AUTHOR,
    "author_email": "o'brien+iot@example.com",
    "version": " 1.2.3 ",
    "timezone": " Asia/Tashkent ",
    "device_topic_prefix": " up ",
    "command_topic_prefix": " down ",
    "device_message_kinds": " telemetry , alarm ",
    "shared_subscription_group": " workers ",
    "mqtt_handler_username": " ingest ",
}


@pytest.fixture(scope="module")
def project(bake_project) -> Path:
    return bake_project(HOSTILE)


def files(project: Path, *suffixes: str) -> list[Path]:
    found = [p for p in sorted(project.rglob("*")) if p.is_file() and p.name.endswith(suffixes)]
    assert found, suffixes
    return found


def test_toml_files_load_and_hold_the_answers(project: Path) -> None:
    for path in files(project, ".toml"):
        tomllib.loads(path.read_text(encoding="utf-8"))
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["name"] == "acme_fleet"
    assert meta["version"] == "1.2.3"
    assert meta["description"] == DESCRIPTION
    assert meta["authors"] == [{"name": AUTHOR, "email": "o'brien+iot@example.com"}]


def test_the_template_tree_keeps_its_own_pyproject_valid_for_tools() -> None:
    """Tools run inside the template (ruff, editors) read the project's pyproject.toml as their config."""
    tomllib.loads((TEMPLATE / "{{cookiecutter.project_slug}}/pyproject.toml").read_text(encoding="utf-8"))


def test_yaml_and_json_files_load(project: Path, tools) -> None:
    for path in files(project, ".yml", ".yaml"):
        # Kubernetes manifests hold one document per object.
        assert all(document is not None for document in yaml.safe_load_all(path.read_text(encoding="utf-8")))
    for name in ("docker-compose.infra.yml", "docker-compose.app.yml"):
        compose_config(tools, project, name)
    for path in [p for p in project.rglob("*.json") if p.is_file()]:
        json.loads(path.read_text(encoding="utf-8"))


def test_python_files_compile_pass_ruff_and_hold_the_answers(project: Path, tools) -> None:
    for path in files(project, ".py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    lint = run_in(project, str(tools.ruff), "check", "--no-cache", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatted = run_in(project, str(tools.ruff), "format", "--check", "--no-cache", ".")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    settings = project / "src/config/settings.py"
    constants = module_constants(settings)
    assert constants["PROJECT_NAME"] == NAME.strip()
    assert constants["PROJECT_SLUG"] == "acme_fleet"
    defaults = {
        call.args[0].value: call.keywords[0].value.value
        for call in ast.walk(ast.parse(settings.read_text(encoding="utf-8")))
        if isinstance(call, ast.Call)
        and getattr(call.func, "attr", "") == "str"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and call.keywords
        and call.keywords[0].arg == "default"
        and isinstance(call.keywords[0].value, ast.Constant)
    }
    assert defaults["DJANGO_TIME_ZONE"] == "Asia/Tashkent"
    topology = module_constants(project / "src/apps/mqtt_service/topology.py")
    assert (topology["DEVICE_TOPIC_PREFIX"], topology["COMMAND_TOPIC_PREFIX"]) == ("up", "down")
    assert topology["DEVICE_MESSAGE_KINDS"] == ("telemetry", "alarm")
    assert (topology["SHARED_SUBSCRIPTION_GROUP"], topology["HANDLER_USERNAME"]) == ("workers", "ingest")


def test_examples_in_generated_code_use_the_answered_prefixes(project: Path) -> None:
    publisher = (project / "src/apps/mqtt_service/mqtt_publisher.py").read_text(encoding="utf-8")
    assert 'topic="down/device_001"' in publisher
    shipped = [p for p in files(project, ".py", ".sh", ".md", "Makefile") if "tests" not in p.parts]
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        assert "to_device" not in text and "from_device" not in text, path


def test_markdown_shows_the_answers_literally(project: Path) -> None:
    tokens = (
        MarkdownIt("commonmark").enable("table").parse((project / "README.md").read_text(encoding="utf-8"))
    )
    inline = [t for t in tokens if t.type == "inline"]
    heading = next(i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h1")
    assert tokens[heading + 1].children[0].content == NAME.strip()
    assert [child.type for child in tokens[heading + 1].children] == ["text"], "markup leaked from the name"
    description = inline[1]
    assert "".join(child.content for child in description.children) == DESCRIPTION
    assert {child.type for child in description.children} == {"text"}
    code_spans = {child.content for t in inline for child in t.children or [] if child.type == "code_inline"}
    assert {"up/<username>/telemetry", "down/<username>", "$share/workers/up/+/alarm"} <= code_spans
    assert not [span for span in code_spans if span != span.strip() or re.search(r" (up|down)/|/ ", span)]


def test_env_files_and_scripts_parse(project: Path) -> None:
    env = read_env(project / ".env")
    assert env["DJANGO_TIME_ZONE"] == "Asia/Tashkent"
    assert env["POSTGRES_DB"] == env["POSTGRES_USER"] == "acme_fleet"
    for script in files(project, ".sh"):
        check = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, f"{script}: {check.stderr}"
    make = run_in(project, "make", "--dry-run", "help")
    assert make.returncode == 0, make.stderr


def test_acl_holds_the_trimmed_topics(project: Path) -> None:
    topics = {
        topic for rule in consult(project / "compose/emqx/acl.conf") if len(rule) == 4 for topic in rule[3]
    }
    assert "up/${username}/telemetry" in topics and "down/${username}" in topics
    assert not [t for t in topics if isinstance(t, str) and re.search(r"(^|/)\s|\s($|/)", t)]
