"""The answer sets the template suite bakes, and small readers of what a bake wrote."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "other_name": {"project_name": "Smart Farm"},
    "device_prefix": {"device_topic_prefix": "telemetry"},
    "command_prefix": {"command_topic_prefix": "cmd"},
    "kinds": {"device_message_kinds": "metrics, alarm,heartbeat"},
    "single_kind": {"device_message_kinds": "status"},
    "group": {"shared_subscription_group": "workers"},
    "ingest_qos_0": {"ingest_qos": 0},
    "ingest_qos_2": {"ingest_qos": 2},
    "command_qos_0": {"command_qos": 0},
    "command_qos_2": {"command_qos": 2},
    "handler_replicas_3": {"mqtt_handler_replicas": 3},
    "publisher_replicas_2": {"mqtt_publisher_replicas": 2},
    "hash_pbkdf2": {"device_password_hash": "pbkdf2"},
    "hash_bcrypt": {"device_password_hash": "bcrypt"},
    "no_flower": {"use_flower": False},
    "exposed_ports": {"expose_infra_ports": True},
    "timezone": {"timezone": "Asia/Tashkent", "language_code": "uz"},
    "emqx_cluster_3": {"emqx_nodes": 3},
    # Pairs that interact.
    "replicas_without_flower": {
        "mqtt_handler_replicas": 3,
        "mqtt_publisher_replicas": 2,
        "use_flower": False,
    },
    # A cluster with several replicas of every backend service and no Flower.
    "emqx_cluster_5_replicas": {
        "emqx_nodes": 5,
        "mqtt_handler_replicas": 3,
        "mqtt_publisher_replicas": 2,
        "use_flower": False,
    },
    "custom_kinds_pbkdf2": {
        "device_topic_prefix": "telemetry",
        "device_message_kinds": "metrics,alarm",
        "device_password_hash": "pbkdf2",
    },
    "renamed_broker_users": {"mqtt_handler_username": "ingest-bot", "mqtt_publisher_username": "cmd_bot"},
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
    # Every other answer that changes generated code, in two bakes whose own suites run (SUITE_VARIANTS):
    # the extreme QoS levels both ways, each password scheme, renamed broker users, another language, kinds
    # without `status` and a single kind.
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
    "edges_qos2_pbkdf2": {
        "device_message_kinds": "status",
        "ingest_qos": 2,
        "command_qos": 0,
        "device_password_hash": "pbkdf2",
        "mqtt_publisher_replicas": 2,
        "use_flower": False,
        "emqx_nodes": 3,
    },
    # Answers typed on the command line arrive as strings.
    "answers_as_strings": {
        "ingest_qos": "2",
        "command_qos": "0",
        "mqtt_handler_replicas": "4",
        "emqx_nodes": "3",
    },
}

# The bakes whose own test suites the template suite runs besides the defaults': between them, every answer
# that changes the generated code takes a value other than its default. (Each single-answer bake above is
# checked statically; running ~25 full suites would cost most of the CI budget for little more coverage.)
SUITE_VARIANTS = ("acme_fleet", "edges_qos0_bcrypt", "edges_qos2_pbkdf2")

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
SLUGS = {"other_name": "smart_farm", "acme_fleet": "acme_fleet", "edges_qos0_bcrypt": "edge_s_fleet"}


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
