"""Bake the defaults, each answer varied one at a time and the pairs that interact; every bake must be
a clean, consistent project: rendered, compiling, lint-clean, loadable by Compose, Erlang and HOCON, and
with the ACL, compose services and Django topic module all saying the same thing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from bake_variants import VARIANTS, compose_config, emqx_nodes, expected, module_constants, read_env, run_in
from emqx_authz_model import Atom, consult
from pyhocon import ConfigFactory

SECRETS = (
    "DJANGO_SECRET_KEY",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "MQTT_ROOT_PASSWORD",
    "MQTT_HANDLER_PASSWORD",
    "MQTT_PUBLISHER_PASSWORD",
    "EMQX_NODE_COOKIE",
)
# A cookiecutter expression or block that survived rendering (Django's own {% %} tags are expected).
UNRENDERED = re.compile(r"\{[{%#]-?\s*(?:cookiecutter\b|raw\b|endraw\b)|cookiecutter\.(?!json\b)[a-z_]+")
PRESENCE = ("$SYS/brokers/+/clients/+/connected", "$SYS/brokers/+/clients/+/disconnected")


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def baked(request: pytest.FixtureRequest, bake_project) -> tuple[str, Path]:
    return request.param, bake_project(VARIANTS[request.param])


def text_files(project: Path) -> list[Path]:
    files = []
    for path in sorted(project.rglob("*")):
        if path.is_file():
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            files.append(path)
    return files


def test_no_unrendered_cookiecutter_tag(baked) -> None:
    _, project = baked
    leftovers = [
        f"{path.relative_to(project)}: {match.group(0)}"
        for path in text_files(project)
        for match in UNRENDERED.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not leftovers
    assert not [p for p in project.rglob("*") if "cookiecutter" in p.name], "unrendered path name"


def test_python_compiles_and_passes_ruff_check_and_format(baked, tools) -> None:
    _, project = baked
    sources = sorted(project.rglob("*.py"))
    assert sources
    for source in sources:
        compile(source.read_text(encoding="utf-8"), str(source), "exec")
    lint = run_in(project, str(tools.ruff), "check", "--no-cache", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # The generated pre-commit hooks and `make lint` run ruff format: a fresh bake must already be formatted.
    formatted = run_in(project, str(tools.ruff), "format", "--check", "--no-cache", ".")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


@pytest.mark.parametrize("compose_file", ["docker-compose.infra.yml", "docker-compose.app.yml"])
def test_compose_file_passes_docker_compose_config(baked, tools, compose_file: str) -> None:
    _, project = baked
    check = run_in(project, str(tools.docker_compose), "-f", compose_file, "config", "--quiet")
    assert check.returncode == 0, check.stderr


def test_acl_parses_with_erlang(baked, tools) -> None:
    _, project = baked
    assert consult(project / "compose/emqx/acl.conf"), "Erlang's file:consult reads the rules"
    lines = [line for line in (project / "compose/emqx/acl.conf").read_text().splitlines() if line.strip()]
    assert all(line.startswith("%%") or line.endswith(".") for line in lines), "one rule per line"
    assert lines[-1] == "{deny, all}."


def test_emqx_config_parses_as_hocon_and_follows_the_answers(baked, tools) -> None:
    variant, project = baked
    want = expected(variant)
    nodes = emqx_nodes(compose_config(tools, project, "docker-compose.infra.yml")["services"])
    assert len(nodes) == want["emqx_nodes"]
    first, *others = (node["environment"] for node in nodes.values())
    # Every node of a cluster runs with the same auth chain, ACL and sizing: only its own name differs.
    for other in others:
        assert {**other, "EMQX_NODE__NAME": ""} == {**first, "EMQX_NODE__NAME": ""}
    emqx = first
    env = read_env(project / ".env")
    # Compose's output keeps a literal $ escaped as $$; EMQX receives a single $.
    auth = ConfigFactory.parse_string("chain = " + emqx["EMQX_AUTHENTICATION"].replace("$$", "$"))["chain"]
    authz = ConfigFactory.parse_string(emqx["EMQX_AUTHORIZATION"].replace("$$", "$"))

    builtin, postgres = auth
    assert (builtin["mechanism"], builtin["backend"]) == ("password_based", "built_in_database")
    assert builtin["bootstrap_file"] == "/opt/emqx/data/bootstrap_users.json"
    assert builtin["bootstrap_type"] == "plain"
    assert (postgres["mechanism"], postgres["backend"], postgres["server"]) == (
        "password_based",
        "postgresql",
        "postgres:5432",
    )
    assert postgres["query"] == (
        "SELECT password_hash, salt, false AS is_superuser FROM devices_device "
        "WHERE username = ${username} AND is_active LIMIT 1"
    )
    assert postgres["password"] == env["POSTGRES_PASSWORD"]
    assert (postgres["database"], postgres["username"]) == (env["POSTGRES_DB"], env["POSTGRES_USER"])

    scheme = module_constants(project / "src/apps/devices/password_scheme.py")
    algorithm = postgres["password_hash_algorithm"]
    assert scheme["ALGORITHM"] == want["device_password_hash"] == algorithm["name"]
    if scheme["ALGORITHM"] == "pbkdf2":
        assert (
            (algorithm["mac_fun"], algorithm["iterations"], algorithm["dk_length"])
            == (
                scheme["PBKDF2_MAC"],
                scheme["PBKDF2_ITERATIONS"],
                scheme["PBKDF2_DK_LENGTH"],
            )
            == ("sha256", 10000, 32)
        )
    elif scheme["ALGORITHM"] == "sha256":
        assert algorithm["salt_position"] == scheme["SALT_POSITION"] == "suffix"
    else:
        assert set(algorithm) == {"name"}

    assert (authz["no_match"], authz["deny_action"]) == ("deny", "disconnect")
    assert [(s["type"], s["path"]) for s in authz["sources"]] == [("file", "/opt/emqx/etc/acl.conf")]
    assert emqx["EMQX_LISTENERS__TCP__DEFAULT__ENABLE_AUTHN"] == "quick_deny_anonymous"
    assert emqx["EMQX_MQTT__SHARED_SUBSCRIPTION_STRATEGY"] == "hash_clientid"
    # The handler's presence source: EMQX's client connected/disconnected events.
    events = ConfigFactory.parse_string("e = " + emqx["EMQX_SYS_TOPICS__SYS_EVENT_MESSAGES"])["e"]
    assert (events["client_connected"], events["client_disconnected"]) == (True, True)
    assert emqx["EMQX_NODE__COOKIE"] == env["EMQX_NODE_COOKIE"]
    assert emqx["EMQX_DASHBOARD__DEFAULT_PASSWORD"] == env["MQTT_ROOT_PASSWORD"]


def test_replica_services_match_the_answers(baked, tools) -> None:
    variant, project = baked
    want = expected(variant)
    services = compose_config(tools, project, "docker-compose.app.yml")["services"]
    slug = want["project_slug"]
    for role, count in (
        ("handler", want["mqtt_handler_replicas"]),
        ("publisher", want["mqtt_publisher_replicas"]),
    ):
        names = sorted(
            (n for n in services if n.startswith(f"mqtt-{role}-")), key=lambda n: int(n.split("-")[-1])
        )
        assert names == [f"mqtt-{role}-{i}" for i in range(1, count + 1)]
        for name in names:
            service = services[name]
            assert service["container_name"] == f"{docker_name(slug)}-{name}"
            assert service["environment"]["MQTT_CLIENT_ID"] == f"{slug}-{name}"
            assert service["command"] == [f"/app/compose/django/start-mqtt-{role}.sh"]
            assert service["depends_on"]["django-app"]["condition"] == "service_healthy"
    client_ids = [s["environment"].get("MQTT_CLIENT_ID") for s in services.values()]
    client_ids = [c for c in client_ids if c]
    assert len(client_ids) == len(set(client_ids))
    expected_services = {"django-app", "celery-worker", "celery-beat"} | (
        {"flower"} if want["use_flower"] else set()
    )
    assert expected_services <= set(services)
    assert ("flower" in services) == want["use_flower"]
    # A cluster is reached through its load balancer, a single node directly.
    broker = "emqx-lb" if want["emqx_nodes"] > 1 else "emqx"
    for name, service in services.items():
        assert service["environment"]["POSTGRES_HOST"] == "postgres"
        assert service["environment"]["REDIS_HOST"] == "redis"
        assert service["environment"]["MQTT_BROKER_HOST"] == broker
        assert service["container_name"] == f"{docker_name(slug)}-{name}"
        assert list(service["networks"]) == ["shared"]
    assert "/health/" in " ".join(services["django-app"]["healthcheck"]["test"])


def test_infra_ports_follow_the_answer(baked, tools) -> None:
    variant, project = baked
    want = expected(variant)
    config = compose_config(tools, project, "docker-compose.infra.yml")
    services = config["services"]
    for name, port in (("postgres", 5432), ("redis", 6379)):
        published = services[name].get("ports", [])
        if want["expose_infra_ports"]:
            assert [(p["host_ip"], int(p["published"]), p["target"]) for p in published] == [
                ("127.0.0.1", port, port)
            ]
        else:
            assert published == []
    # MQTT on 1883 (the node, or the load balancer of a cluster); one dashboard port per node.
    mqtt_service = "emqx-lb" if want["emqx_nodes"] > 1 else "emqx"
    assert 1883 in {int(p["published"]) for p in services[mqtt_service]["ports"]}
    dashboards = sorted(
        int(p["published"])
        for node in emqx_nodes(services).values()
        for p in node["ports"]
        if p["target"] == 18083
    )
    assert dashboards == list(range(18083, 18083 + want["emqx_nodes"]))
    for name, service in services.items():
        assert service["healthcheck"]["test"], name


def docker_name(slug: str) -> str:
    return slug.replace("_", "-")


def test_docker_wide_names_carry_the_project_slug(baked, tools) -> None:
    """Two generated projects on one Docker host share no compose project, container, network or volume."""
    variant, project = baked
    prefix = docker_name(expected(variant)["project_slug"])
    infra = compose_config(tools, project, "docker-compose.infra.yml")
    app = compose_config(tools, project, "docker-compose.app.yml")
    assert (infra["name"], app["name"]) == (f"{prefix}-infra", f"{prefix}-app")
    assert infra["networks"]["shared"]["name"] == app["networks"]["shared"]["name"] == f"{prefix}-net"
    assert app["networks"]["shared"]["external"] is True
    for service_name, service in {**infra["services"], **app["services"]}.items():
        assert service["container_name"] == f"{prefix}-{service_name}"
    # compose-go resolves named volumes to <project>_<volume>: the project name keeps them apart.
    nodes = expected(variant)["emqx_nodes"]
    emqx_volumes = (
        [f"emqx_{kind}_{index}" for index in range(1, nodes + 1) for kind in ("data", "log")]
        if nodes > 1
        else ["emqx_data", "emqx_log"]
    )
    assert {volume["name"] for volume in infra["volumes"].values()} == {
        f"{prefix}-infra_{name}" for name in ("postgres_data", "redis_data", *emqx_volumes)
    }


def test_host_ports_come_from_env_with_the_usual_defaults(baked) -> None:
    _, project = baked
    infra = yaml.safe_load((project / "docker-compose.infra.yml").read_text())
    app = yaml.safe_load((project / "docker-compose.app.yml").read_text())
    published = [
        port
        for doc in (infra, app)
        for service in doc["services"].values()
        for port in service.get("ports", [])
    ]
    assert published, "django, emqx publish ports"
    for port in published:
        assert re.fullmatch(r"(127\.0\.0\.1:)?\$\{[A-Z0-9_]+_PORT:-\d+\}:\d+", port), port
    example = read_env(project / ".env.example")
    for name in re.findall(r"\$\{([A-Z0-9_]+_PORT):-", " ".join(published)):
        assert name in example, f"{name} is published from .env but not listed in .env.example"


def test_acl_and_topology_agree_with_the_answers(baked, tools) -> None:
    variant, project = baked
    want = expected(variant)
    topology = module_constants(project / "src/apps/mqtt_service/topology.py")
    assert topology == {
        "DEVICE_TOPIC_PREFIX": want["device_topic_prefix"],
        "COMMAND_TOPIC_PREFIX": want["command_topic_prefix"],
        "DEVICE_MESSAGE_KINDS": want["kinds"],
        "SHARED_SUBSCRIPTION_GROUP": want["shared_subscription_group"],
        "PRESENCE_KIND": "presence",
        "REPLY_KIND": "reply",
        "INGEST_QOS": want["ingest_qos"],
        "COMMAND_QOS": want["command_qos"],
        "HANDLER_USERNAME": want["mqtt_handler_username"],
        "PUBLISHER_USERNAME": want["mqtt_publisher_username"],
    }
    device, command = topology["DEVICE_TOPIC_PREFIX"], topology["COMMAND_TOPIC_PREFIX"]
    # Devices publish, and the handler reads, the answered kinds and the protocol's presence and reply.
    kinds = (*topology["DEVICE_MESSAGE_KINDS"], "presence", "reply")
    rules = consult(project / "compose/emqx/acl.conf")
    allowed = {
        (rule[1], repr(rule[2])): tuple(rule[3]) for rule in rules if len(rule) == 4 and rule[0] == "allow"
    }
    handler = ("username", want["mqtt_handler_username"])
    publisher = ("username", want["mqtt_publisher_username"])
    never_retained = repr((Atom("publish"), [(Atom("retain"), Atom("false"))]))
    assert allowed == {
        (handler, repr(Atom("subscribe"))): tuple(f"{device}/+/{kind}" for kind in kinds) + PRESENCE,
        (publisher, repr(Atom("publish"))): (f"{command}/+",),
        (Atom("all"), never_retained): tuple(f"{device}/${{username}}/{kind}" for kind in kinds),
        (Atom("all"), repr(Atom("subscribe"))): (f"{command}/${{username}}",),
    }
    # The service users are fenced before the device rules (which name every client) can apply to them.
    first_device_rule = next(i for i, rule in enumerate(rules) if rule[1] == "all")
    service_denies = {rule[1] for rule in rules[:first_device_rule] if rule[0] == "deny" and rule[2] == "all"}
    assert service_denies == {handler, publisher}
    assert any(rule[0] == "deny" and "$SYS/#" in rule[3] and ("eq", "#") in rule[3] for rule in rules)
    assert rules[-1] == ("deny", "all")


def test_the_broker_users_emqx_creates_are_the_users_the_acl_grants(baked, tools) -> None:
    """The users compose writes into EMQX's bootstrap file are fixed by the answers, whatever .env says: a
    renamed user would lose every permission of acl.conf."""
    variant, project = baked
    want = expected(variant)
    (project / ".env.renamed").write_text(
        (project / ".env").read_text() + "MQTT_HANDLER_USERNAME=renamed\nMQTT_PUBLISHER_USERNAME=renamed2\n"
    )
    result = run_in(
        project,
        str(tools.docker_compose),
        "--env-file",
        ".env.renamed",
        "-f",
        "docker-compose.infra.yml",
        "config",
        "--format",
        "json",
    )
    (project / ".env.renamed").unlink()
    assert result.returncode == 0, result.stderr
    for node in emqx_nodes(json.loads(result.stdout)["services"]).values():
        assert node["environment"]["MQTT_HANDLER_USERNAME"] == want["mqtt_handler_username"]
        assert node["environment"]["MQTT_PUBLISHER_USERNAME"] == want["mqtt_publisher_username"]
    granted = {
        rule[1][1]
        for rule in consult(project / "compose/emqx/acl.conf")
        if rule[0] == "allow" and rule[1] != Atom("all")
    }
    assert granted == {want["mqtt_handler_username"], want["mqtt_publisher_username"]}
    example = read_env(project / ".env.example")
    assert "MQTT_HANDLER_USERNAME" not in example and "MQTT_PUBLISHER_USERNAME" not in example


def test_env_has_every_secret_filled(baked) -> None:
    variant, project = baked
    want = expected(variant)
    example = read_env(project / ".env.example")
    env = read_env(project / ".env")
    needed = SECRETS + (("FLOWER_PASSWORD",) if want["use_flower"] else ())
    for name in needed:
        assert example.get(name) == "", f"{name} should be listed empty in .env.example"
        assert re.fullmatch(r"[A-Za-z0-9]{32,}", env[name]), name
    assert len(env["DJANGO_SECRET_KEY"]) >= 50
    assert len({env[name] for name in needed}) == len(needed), "every secret is distinct"
    assert set(env) == set(example), ".env has exactly the names of .env.example"
    assert env["DJANGO_TIME_ZONE"] == want.get("timezone", "UTC")


def test_env_is_private_and_ignored_by_git(baked) -> None:
    _, project = baked
    assert (project / ".env").stat().st_mode & 0o077 == 0, ".env must be readable by its owner only"
    ignored = {line.strip() for line in (project / ".gitignore").read_text().splitlines()}
    assert ".env" in ignored


@pytest.mark.parametrize("compose_file", ["docker-compose.infra.yml", "docker-compose.app.yml"])
def test_compose_secrets_come_only_from_env(baked, compose_file: str) -> None:
    """No default password in compose: every secret is a ${NAME:?...} reference that refuses to be empty."""
    _, project = baked
    data = yaml.safe_load((project / compose_file).read_text())
    secret_name = re.compile(r"PASSWORD|SECRET|COOKIE|REDISCLI_AUTH")
    checked = 0
    for service in data["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if secret_name.search(name):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{name}={value}"
                checked += 1
    assert checked or compose_file.endswith("app.yml")


def test_flower_is_pruned_when_turned_off(baked) -> None:
    variant, project = baked
    if expected(variant)["use_flower"]:
        assert (project / "compose/django/start-flower.sh").exists()
        return
    assert not (project / "compose/django/start-flower.sh").exists()
    flower = re.compile(r"\bflower", re.IGNORECASE)  # a word of its own: "OverflowError" is not Flower
    mentions = [
        str(path.relative_to(project))
        for path in text_files(project)
        if path.name != "README.md" and flower.search(path.read_text(encoding="utf-8"))
    ]
    assert not mentions, f"Flower left behind in {mentions}"


def test_hooks_leave_the_template_clean(baked) -> None:
    template = Path(__file__).resolve().parents[1]
    assert not (template / "hooks/__pycache__").exists()


def tree(project: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and path.name != ".env"
    }


@pytest.mark.parametrize("variant", ["defaults", "emqx_cluster_5_replicas"])
def test_same_answers_give_the_same_tree_but_fresh_secrets(bake_project, variant: str) -> None:
    first = bake_project(VARIANTS[variant], fresh=True)
    second = bake_project(VARIANTS[variant], fresh=True)
    assert tree(first) == tree(second)
    first_env, second_env = read_env(first / ".env"), read_env(second / ".env")
    for name in SECRETS:
        assert first_env[name] != second_env[name], name
    assert {k: v for k, v in first_env.items() if k not in SECRETS and "PASSWORD" not in k} == {
        k: v for k, v in second_env.items() if k not in SECRETS and "PASSWORD" not in k
    }


@pytest.mark.parametrize("relative_to", ["template", "parent"])
def test_bakes_from_a_relative_template_path(
    tmp_path: Path, cookiecutter_config: Path, relative_to: str
) -> None:
    """`cookiecutter .` passes a relative path to the hooks, which must still find hooks/answers.py."""
    import sys

    template = Path(__file__).resolve().parents[1]
    cwd, argument = (template, ".") if relative_to == "template" else (template.parent, template.name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            "--config-file",
            str(cookiecutter_config),
            "-o",
            str(tmp_path),
            argument,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "iot_backend/compose/emqx/acl.conf").exists()


def test_broker_in_flight_window_matches_the_handlers_receive_maximum(bake_project, tools) -> None:
    project = bake_project({})
    emqx = compose_config(tools, project, "docker-compose.infra.yml")["services"]["emqx"]["environment"]
    service = (project / "src/apps/mqtt_service/handler_service.py").read_text()
    receive_maximum = re.search(r"receive_maximum: int = (\d+)", service)
    assert receive_maximum, "HandlerService declares its receive_maximum default"
    assert emqx["EMQX_MQTT__MAX_INFLIGHT"] == receive_maximum.group(1)
    assert int(emqx["EMQX_MQTT__MAX_MQUEUE_LEN"]) >= int(receive_maximum.group(1))
