"""docker-compose.infra.yml and docker-compose.app.yml, built as dicts from the answers.

Values that come from .env are compose interpolations (${VAR}); a `$` meant for the container or for
EMQX is written `$$`. Secrets use ${VAR:?...} so compose refuses to start without them.

Every Docker-wide name (compose projects, containers, the shared network) starts with the project's slug, and
host ports come from .env, so several generated projects run side by side on one Docker host. Named volumes
belong to their compose project, so they are distinct too.
"""

from __future__ import annotations

from typing import Any

import derive_emqx
import emqx_node
from answers import Answers
from backend_services import (
    APP_SCRIPTS,
    EMQX_DASHBOARD_PORT,
    MQTT_PORT,
    MQTT_STOP_GRACE_SECONDS,
    backend_environment,
)
from emqx_cluster import (
    HAPROXY_CONFIG,
    HAPROXY_CONFIG_IN_IMAGE,
    HAPROXY_IMAGE,
    HAPROXY_MONITOR_PORT,
    HAPROXY_MONITOR_URI,
    HAPROXY_OPEN_FILES,
    LOAD_BALANCER_SERVICE,
    MQTT_HOST_PORT,
    ComposeNode,
    broker_host,
    compose_nodes,
    is_cluster,
)
from emqx_node import EnvRef

# Inside the infra project's network the services are reached by these names.
NETWORK = "shared"


def _required(name: str) -> str:
    return "${" + name + ":?set " + name + " in .env}"


def _healthcheck(test: list[str], interval: str = "10s", retries: int = 5, start_period: str = "20s") -> dict:
    return {
        "test": test,
        "interval": interval,
        "timeout": "10s",
        "retries": retries,
        "start_period": start_period,
    }


def _postgres(answers: Answers) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": f"postgres:{answers.images.postgres}",
        "restart": "unless-stopped",
        "environment": {
            "POSTGRES_DB": "${POSTGRES_DB}",
            "POSTGRES_USER": "${POSTGRES_USER}",
            "POSTGRES_PASSWORD": _required("POSTGRES_PASSWORD"),
        },
        "volumes": ["postgres_data:/var/lib/postgresql/data"],
        "healthcheck": _healthcheck(["CMD-SHELL", 'pg_isready -U "$${POSTGRES_USER}" -d "$${POSTGRES_DB}"']),
        "networks": [NETWORK],
    }
    if answers.expose_infra_ports:
        service["ports"] = ["127.0.0.1:${POSTGRES_PORT:-5432}:5432"]
    return service


def _redis(answers: Answers) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": f"redis:{answers.images.redis}",
        "restart": "unless-stopped",
        "command": [
            "redis-server",
            "/usr/local/etc/redis/redis.conf",
            "--requirepass",
            _required("REDIS_PASSWORD"),
        ],
        # redis-cli reads the password from REDISCLI_AUTH, so the healthcheck keeps it off its command line.
        "environment": {"REDISCLI_AUTH": _required("REDIS_PASSWORD")},
        "volumes": ["./compose/redis/redis.conf:/usr/local/etc/redis/redis.conf:ro", "redis_data:/data"],
        "healthcheck": _healthcheck(["CMD-SHELL", "redis-cli ping | grep -q PONG"]),
        "networks": [NETWORK],
    }
    if answers.expose_infra_ports:
        service["ports"] = ["127.0.0.1:${REDIS_PORT:-6379}:6379"]
    return service


def _compose_reference(ref: EnvRef) -> str:
    """A .env value as compose interpolates it: required (a secret), or with its default."""
    if ref.default is None:
        return _required(ref.name)
    return "${" + ref.name + ":-" + ref.default + "}"


def _emqx_environment(answers: Answers, node: ComposeNode, nodes: list[ComposeNode]) -> dict[str, str]:
    environment = {"EMQX_NODE__NAME": node.node_name}
    if len(nodes) > 1:
        seeds = derive_emqx.to_hocon([peer.node_name for peer in nodes], dollar="$$")
        environment["EMQX_CLUSTER__DISCOVERY_STRATEGY"] = "static"
        environment["EMQX_CLUSTER__STATIC__SEEDS"] = seeds
    shared = emqx_node.node_environment(answers, _compose_reference, dollar="$$")
    for name, value in shared.items():
        environment[name] = _compose_reference(value) if isinstance(value, EnvRef) else value
    return environment


def _emqx_node(answers: Answers, node: ComposeNode, nodes: list[ComposeNode]) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": f"emqx/emqx:{answers.images.emqx}",
        "restart": "unless-stopped",
        # A stable node name keeps the data volume valid across restarts (it is keyed on the name).
        "hostname": node.hostname,
        "entrypoint": ["/bin/sh", emqx_node.ENTRYPOINT],
        "command": list(emqx_node.COMMAND),
        "environment": _emqx_environment(answers, node, nodes),
        "ports": [f"{node.dashboard_host_port}:{EMQX_DASHBOARD_PORT}"],
        "volumes": [
            f"{node.data_volume}:{emqx_node.DATA_DIR}",
            f"{node.log_volume}:{emqx_node.LOG_DIR}",
            "./compose/emqx/acl.conf:/opt/emqx/etc/acl.conf:ro",
            f"./compose/emqx/entrypoint.sh:{emqx_node.ENTRYPOINT}:ro",
        ],
        "healthcheck": _healthcheck(["CMD", "/opt/emqx/bin/emqx", "ctl", "status"], start_period="30s"),
        "depends_on": {"postgres": {"condition": "service_healthy"}},
        "networks": [NETWORK],
    }
    if len(nodes) == 1:
        service["ports"].insert(0, f"{MQTT_HOST_PORT}:{MQTT_PORT}")
    else:
        # Peers reach a node by its node name's host part, so that name must resolve in the network.
        service["networks"] = {NETWORK: {"aliases": [node.hostname]}}
    return service


def _emqx_load_balancer(nodes: list[ComposeNode]) -> dict[str, Any]:
    monitor = f"/dev/tcp/127.0.0.1/{HAPROXY_MONITOR_PORT}"
    return {
        "image": HAPROXY_IMAGE,
        "restart": "unless-stopped",
        "ports": [f"{MQTT_HOST_PORT}:{MQTT_PORT}"],
        "volumes": [f"./{HAPROXY_CONFIG}:{HAPROXY_CONFIG_IN_IMAGE}:ro"],
        # Healthy while at least one EMQX node passes HAProxy's own check (its monitor URI answers 200).
        "healthcheck": _healthcheck(
            [
                "CMD",
                "bash",
                "-c",
                f"exec 3<>{monitor} && printf 'GET {HAPROXY_MONITOR_URI} HTTP/1.0\\r\\n\\r\\n' >&3 "
                "&& head -n 1 <&3 | grep -q ' 200 '",
            ]
        ),
        # Started once the nodes exist; it follows their health itself, so one node down does not hold it.
        "depends_on": {node.service: {"condition": "service_started"} for node in nodes},
        "ulimits": {"nofile": {"soft": HAPROXY_OPEN_FILES, "hard": HAPROXY_OPEN_FILES}},
        "networks": [NETWORK],
    }


def _named(answers: Answers, services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for name, service in services.items():
        service["container_name"] = answers.container(name)
    return services


def infra_compose(answers: Answers) -> dict[str, Any]:
    nodes = compose_nodes(answers)
    services: dict[str, Any] = {"postgres": _postgres(answers), "redis": _redis(answers)}
    services.update({node.service: _emqx_node(answers, node, nodes) for node in nodes})
    if is_cluster(answers):
        services[LOAD_BALANCER_SERVICE] = _emqx_load_balancer(nodes)
    volumes: dict[str, Any] = {"postgres_data": {}, "redis_data": {}}
    for node in nodes:
        volumes.update({node.data_volume: {}, node.log_volume: {}})
    return {
        "name": answers.infra_project,
        "services": _named(answers, services),
        "volumes": volumes,
        "networks": {NETWORK: {"name": answers.network, "driver": "bridge"}},
    }


def _app_service(answers: Answers, script: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """One container of the app image; every call builds fresh dicts so YAML has no anchors."""
    # Inside the network the infra services are reached by name on their container ports.
    environment = backend_environment(broker_host(answers))
    environment.update(extra_env or {})
    return {
        "build": {"context": ".", "dockerfile": "compose/django/Dockerfile"},
        "image": f"{answers.project_slug}-app:latest",
        "env_file": [".env"],
        "environment": environment,
        "command": [f"{APP_SCRIPTS}/{script}"],
        "restart": "unless-stopped",
        "networks": [NETWORK],
    }


def _after_django(service: dict[str, Any]) -> dict[str, Any]:
    service["depends_on"] = {"django-app": {"condition": "service_healthy"}}
    return service


def _mqtt_replicas(answers: Answers, role: str, count: int) -> dict[str, dict[str, Any]]:
    services = {}
    for index in range(1, count + 1):
        name = f"mqtt-{role}-{index}"
        service = _app_service(
            answers, f"start-mqtt-{role}.sh", {"MQTT_CLIENT_ID": f"{answers.project_slug}-{name}"}
        )
        # Time to finish in-flight messages after SIGTERM before compose kills the replica.
        service["stop_grace_period"] = f"{MQTT_STOP_GRACE_SECONDS}s"
        services[name] = _after_django(service)
    return services


def app_compose(answers: Answers) -> dict[str, Any]:
    django = _app_service(answers, "start-django.sh")
    django["ports"] = ["${DJANGO_PORT:-8000}:8000"]
    django["healthcheck"] = _healthcheck(
        [
            "CMD",
            "python",
            "-c",
            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/', timeout=5)",
        ],
        interval="15s",
        start_period="30s",
    )
    services: dict[str, Any] = {"django-app": django}
    services.update(_mqtt_replicas(answers, "handler", answers.mqtt_handler_replicas))
    services.update(_mqtt_replicas(answers, "publisher", answers.mqtt_publisher_replicas))
    services["celery-worker"] = _after_django(_app_service(answers, "start-celery-worker.sh"))
    services["celery-beat"] = _after_django(_app_service(answers, "start-celery-beat.sh"))
    if answers.use_flower:
        flower = _after_django(_app_service(answers, "start-flower.sh"))
        flower["ports"] = ["${FLOWER_PORT:-5555}:5555"]
        services["flower"] = flower
    return {
        "name": answers.app_project,
        "services": _named(answers, services),
        "networks": {NETWORK: {"name": answers.network, "external": True}},
    }
