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
from answers import Answers
from derive_emqx import EnvReference

# Inside the infra project's network the services are reached by these names.
NETWORK = "shared"
EMQX_ENTRYPOINT = "/opt/emqx/compose-entrypoint.sh"
APP_ROOT = "/app/compose/django"


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


def _emqx_environment(answers: Answers) -> dict[str, str]:
    postgres = {
        "database": EnvReference("${POSTGRES_DB}"),
        "username": EnvReference("${POSTGRES_USER}"),
        "password": EnvReference(_required("POSTGRES_PASSWORD")),
    }
    chain = derive_emqx.authentication_chain(answers, postgres)
    return {
        "EMQX_NODE__NAME": "emqx@node1.emqx.local",
        "EMQX_NODE__COOKIE": _required("EMQX_NODE_COOKIE"),
        "EMQX_DASHBOARD__DEFAULT_USERNAME": f"${{MQTT_ROOT_USERNAME:-{answers.root_username}}}",
        "EMQX_DASHBOARD__DEFAULT_PASSWORD": _required("MQTT_ROOT_PASSWORD"),
        "EMQX_AUTHENTICATION": derive_emqx.to_hocon(chain, dollar="$$"),
        "EMQX_AUTHORIZATION": derive_emqx.to_hocon(derive_emqx.authorization(), dollar="$$"),
        "EMQX_LISTENERS__TCP__DEFAULT__ENABLE_AUTHN": "quick_deny_anonymous",
        "EMQX_MQTT__SHARED_SUBSCRIPTION_STRATEGY": "hash_clientid",
        "EMQX_MQTT__MAX_MQUEUE_LEN": str(derive_emqx.MAX_MQUEUE_LEN),
        "EMQX_MQTT__MAX_INFLIGHT": str(derive_emqx.MAX_INFLIGHT),
        # Read by compose/emqx/entrypoint.sh to write the built-in database's bootstrap users.
        "EMQX_BOOTSTRAP_USERS_FILE": derive_emqx.BOOTSTRAP_USERS_FILE,
        "MQTT_ROOT_USERNAME": f"${{MQTT_ROOT_USERNAME:-{answers.root_username}}}",
        "MQTT_ROOT_PASSWORD": _required("MQTT_ROOT_PASSWORD"),
        # Fixed by the answers, not .env: acl.conf grants exactly these names.
        "MQTT_HANDLER_USERNAME": answers.handler_username,
        "MQTT_HANDLER_PASSWORD": _required("MQTT_HANDLER_PASSWORD"),
        "MQTT_PUBLISHER_USERNAME": answers.publisher_username,
        "MQTT_PUBLISHER_PASSWORD": _required("MQTT_PUBLISHER_PASSWORD"),
    }


def _emqx(answers: Answers) -> dict[str, Any]:
    return {
        "image": f"emqx/emqx:{answers.images.emqx}",
        "restart": "unless-stopped",
        # A stable node name keeps the data volume valid across restarts (it is keyed on the name).
        "hostname": "node1.emqx.local",
        "entrypoint": ["/bin/sh", EMQX_ENTRYPOINT],
        "command": ["/opt/emqx/bin/emqx", "foreground"],
        "environment": _emqx_environment(answers),
        "ports": ["${MQTT_BROKER_PORT:-1883}:1883", "${EMQX_DASHBOARD_PORT:-18083}:18083"],
        "volumes": [
            "emqx_data:/opt/emqx/data",
            "emqx_log:/opt/emqx/log",
            "./compose/emqx/acl.conf:/opt/emqx/etc/acl.conf:ro",
            f"./compose/emqx/entrypoint.sh:{EMQX_ENTRYPOINT}:ro",
        ],
        "healthcheck": _healthcheck(["CMD", "/opt/emqx/bin/emqx", "ctl", "status"], start_period="30s"),
        "depends_on": {"postgres": {"condition": "service_healthy"}},
        "networks": [NETWORK],
    }


def _named(answers: Answers, services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for name, service in services.items():
        service["container_name"] = answers.container(name)
    return services


def infra_compose(answers: Answers) -> dict[str, Any]:
    services = {"postgres": _postgres(answers), "redis": _redis(answers), "emqx": _emqx(answers)}
    return {
        "name": answers.infra_project,
        "services": _named(answers, services),
        "volumes": {"postgres_data": {}, "redis_data": {}, "emqx_data": {}, "emqx_log": {}},
        "networks": {NETWORK: {"name": answers.network, "driver": "bridge"}},
    }


def _app_service(answers: Answers, script: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """One container of the app image; every call builds fresh dicts so YAML has no anchors."""
    environment = {
        # Inside the network the infra services are reached by name on their container ports.
        "POSTGRES_HOST": "postgres",
        "POSTGRES_PORT": "5432",
        "REDIS_HOST": "redis",
        "REDIS_PORT": "6379",
        "MQTT_BROKER_HOST": "emqx",
        "MQTT_BROKER_PORT": "1883",
    }
    environment.update(extra_env or {})
    return {
        "build": {"context": ".", "dockerfile": "compose/django/Dockerfile"},
        "image": f"{answers.project_slug}-app:latest",
        "env_file": [".env"],
        "environment": environment,
        "command": [f"{APP_ROOT}/{script}"],
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
        service["stop_grace_period"] = "30s"
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
