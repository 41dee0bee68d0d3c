"""The answer sets the template suite bakes, and small readers of what a bake wrote."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any

# Every bake the template suite makes. Each passes the static checks and its own generated suite (those whose
# generated code is identical share one run). Between them every answer takes a value other than its default
# (tests/test_generated_project.py checks it), in combinations chosen to interact: a bake per answer would
# cost the CI budget ~25 suite runs for little more coverage.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # A team's own fleet: every topic answer differs from the defaults, custom kinds, quotes in the name,
    # three handler replicas. The new-user walkthrough and the fault tests run on it too.
    "acme_fleet": {
        "project_name": 'Acme "Field" Fleet',
        "project_slug": "acme_fleet",
        "device_topic_prefix": "up",
        "command_topic_prefix": "down",
        "device_message_kinds": "telemetry,alarm,status",
        "shared_subscription_group": "workers",
        "mqtt_handler_replicas": 3,
    },
    # QoS 0 in, QoS 2 out; kinds without `status` (one padded); bcrypt; renamed broker users; another zone and
    # language; a slug derived from a name with an apostrophe.
    "edges_qos0_bcrypt": {
        "project_name": "Edge's Fleet",
        "device_message_kinds": "metrics, alarm,heartbeat",
        "command_topic_prefix": "cmd",
        "ingest_qos": 0,
        "command_qos": 2,
        "device_password_hash": "bcrypt",
        "mqtt_handler_username": "ingest-bot",
        "mqtt_publisher_username": "cmd_bot",
        "timezone": "Asia/Tashkent",
        "language_code": "uz",
    },
    # QoS 2 in, QoS 0 out, typed on the command line (answers arrive as strings); a single kind; pbkdf2;
    # two publishers; no Flower; a three-node EMQX cluster.
    "edges_qos2_pbkdf2": {
        "device_message_kinds": "status",
        "ingest_qos": "2",
        "command_qos": "0",
        "device_password_hash": "pbkdf2",
        "mqtt_publisher_replicas": "2",
        "use_flower": False,
        "emqx_nodes": "3",
    },
    # A five-node cluster with several replicas of every backend service, no Flower, infra ports on the host.
    "emqx_cluster_5_replicas": {
        "emqx_nodes": 5,
        "mqtt_handler_replicas": 4,
        "mqtt_publisher_replicas": 2,
        "use_flower": False,
        "expose_infra_ports": True,
    },
}

DEFAULTS = {
    "project_slug": "iot_backend",
    "device_topic_prefix": "from_device",
    "command_topic_prefix": "to_device",
    "device_message_kinds": "status,event",
    "shared_subscription_group": "handlers",
    "ingest_qos": 1,
    "command_qos": 1,
    "mqtt_handler_replicas": 1,
    "mqtt_publisher_replicas": 1,
    "mqtt_handler_username": "svc_handler",
    "mqtt_publisher_username": "svc_publisher",
    "emqx_nodes": 1,
    "device_password_hash": "sha256",
    "use_flower": True,
    "expose_infra_ports": False,
}
SLUGS = {"acme_fleet": "acme_fleet", "edges_qos0_bcrypt": "edge_s_fleet"}


def expected(variant: str) -> dict[str, Any]:
    """The normalized answers a variant stands for."""
    values = {**DEFAULTS, **VARIANTS[variant]}
    values["project_slug"] = SLUGS.get(variant, DEFAULTS["project_slug"])
    values["kinds"] = tuple(kind.strip() for kind in values["device_message_kinds"].split(","))
    for name in (
        "ingest_qos",
        "command_qos",
        "mqtt_handler_replicas",
        "mqtt_publisher_replicas",
        "emqx_nodes",
    ):
        values[name] = int(values[name])
    return values


def module_constants(path: Path) -> dict[str, Any]:
    """Top-level NAME = <literal> assignments (computed ones are skipped), read without importing."""
    values = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return values


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def run_in(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """One of the checking tools, run in the baked project; the caller asserts on the result."""
    return subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=120, check=False)


def emqx_nodes(services: dict[str, Any]) -> dict[str, Any]:
    """The EMQX node services of an infra compose file (one `emqx`, or `emqx-1` ... for a cluster)."""
    return {name: service for name, service in services.items() if service["image"].startswith("emqx/emqx:")}


def compose_config(tools, project: Path, name: str) -> dict[str, Any]:
    """The file as Docker Compose loads it: validated, with .env interpolated."""
    result = run_in(project, str(tools.docker_compose), "-f", name, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
