"""emqx_nodes > 1: the infra compose project runs that many EMQX nodes, clustered by EMQX's static discovery,
behind a generated HAProxy config that Debian's haproxy accepts. Compose loads the files for real
(docker-compose config); nothing here can start a container, so the cluster is checked by construction."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bake_variants import VARIANTS, compose_config, emqx_nodes, expected, read_env, run_in
from pyhocon import ConfigFactory

CLUSTER_VARIANTS = sorted(name for name in VARIANTS if expected(name)["emqx_nodes"] > 1)
HAPROXY_CONFIG = "compose/haproxy/haproxy.cfg"


@pytest.fixture(scope="module", params=CLUSTER_VARIANTS)
def cluster(request: pytest.FixtureRequest, bake_project, tools) -> tuple[int, Path, dict]:
    project = bake_project(VARIANTS[request.param])
    services = compose_config(tools, project, "docker-compose.infra.yml")["services"]
    return expected(request.param)["emqx_nodes"], project, services


def haproxy_lines(project: Path) -> list[str]:
    return [line.strip() for line in (project / HAPROXY_CONFIG).read_text().splitlines()]


def test_every_node_has_a_stable_resolvable_name_and_the_same_seeds(cluster) -> None:
    count, project, services = cluster
    nodes = emqx_nodes(services)
    assert sorted(nodes) == [f"emqx-{index}" for index in range(1, count + 1)]
    names = [f"emqx@node{index}.emqx.local" for index in range(1, count + 1)]
    cookie = read_env(project / ".env")["EMQX_NODE_COOKIE"]
    for index, (service_name, node) in enumerate(sorted(nodes.items())):
        env = node["environment"]
        host = names[index].split("@", 1)[1]
        assert env["EMQX_NODE__NAME"] == names[index], service_name
        assert node["hostname"] == host
        # Peers dial the host part of a node name: it must resolve in the shared network.
        assert node["networks"]["shared"]["aliases"] == [host]
        assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        seeds = ConfigFactory.parse_string("seeds = " + env["EMQX_CLUSTER__STATIC__SEEDS"])["seeds"]
        assert seeds == names
        assert env["EMQX_NODE__COOKIE"] == cookie, "one cookie for the whole cluster, from .env"


def test_every_node_has_its_own_data_volume_and_dashboard_port(cluster) -> None:
    count, _, services = cluster
    nodes = emqx_nodes(services).values()
    data = [next(v["source"] for v in node["volumes"] if v["target"] == "/opt/emqx/data") for node in nodes]
    assert len(set(data)) == count
    for node in nodes:
        targets = {port["target"] for port in node["ports"]}
        assert targets == {18083}, "only the load balancer publishes MQTT"
    dashboards = sorted(int(port["published"]) for node in nodes for port in node["ports"])
    assert len(set(dashboards)) == count


def test_load_balancer_fronts_every_node_on_the_mqtt_port(cluster) -> None:
    count, project, services = cluster
    lb = services["emqx-lb"]
    image, _, tag = lb["image"].partition(":")
    assert image == "haproxy" and re.fullmatch(r"\d+\.\d+\.\d+", tag), "the official image, pinned"
    assert [(int(p["published"]), p["target"]) for p in lb["ports"]] == [(1883, 1883)]
    assert [(v["source"], v["target"]) for v in lb["volumes"]] == [
        (str(project / HAPROXY_CONFIG), "/usr/local/etc/haproxy/haproxy.cfg")
    ]
    assert set(lb["depends_on"]) == set(emqx_nodes(services))
    lines = haproxy_lines(project)
    servers = [line.split()[2] for line in lines if line.startswith("server ")]
    assert servers == [f"node{index}.emqx.local:1883" for index in range(1, count + 1)]
    # Each node is health-checked on EMQX's unauthenticated status endpoint (dashboard port).
    default_server = next(line for line in lines if line.startswith("default-server "))
    assert " check " in f"{default_server} " and "port 18083" in default_server
    assert "http-check send meth GET uri /status ver HTTP/1.1 hdr Host localhost" in lines
    assert "http-check expect status 200" in lines
    maxconn = {int(line.split()[1]) for line in lines if line.startswith("maxconn ")}
    assert len(maxconn) == 1
    assert lb["ulimits"]["nofile"]["hard"] >= 2 * maxconn.pop(), "HAProxy must be able to raise its fd limit"


def test_haproxy_accepts_the_generated_config(cluster, tools) -> None:
    count, project, _ = cluster
    check = run_in(project, str(tools.haproxy), "-c", "-f", HAPROXY_CONFIG)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Configuration file is valid" in check.stdout + check.stderr
    # The node names resolve only inside the compose network; anything else haproxy warns about fails.
    warnings = [line for line in (check.stdout + check.stderr).splitlines() if "[WARNING]" in line]
    unresolved = re.compile(r"could not resolve address 'node\d\.emqx\.local'")
    assert len(warnings) == count and all(unresolved.search(line) for line in warnings), warnings


def test_a_single_node_has_no_load_balancer(bake_project, tools) -> None:
    project = bake_project({})
    services = compose_config(tools, project, "docker-compose.infra.yml")["services"]
    assert set(emqx_nodes(services)) == {"emqx"}
    assert "emqx-lb" not in services
    assert not (project / "compose/haproxy").exists()
    env = services["emqx"]["environment"]
    assert "EMQX_CLUSTER__DISCOVERY_STRATEGY" not in env
    assert {int(p["published"]) for p in services["emqx"]["ports"]} == {1883, 18083}


def test_readme_lists_each_nodes_dashboard(cluster) -> None:
    _, project, services = cluster
    readme = (project / "README.md").read_text()
    for name, node in emqx_nodes(services).items():
        (port,) = node["ports"]
        assert f"`{name}` http://localhost:{port['published']}/" in readme
