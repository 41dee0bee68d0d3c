"""The dev overlay's own PostgreSQL and Redis, for a cluster on a laptop (kind, minikube, k3d).

Production uses managed or operator-run servers instead, reached through Services of the same names, so
nothing else changes between the overlays. Both run from the answered images with the credentials of the
user's Secret, and Redis with the project's redis.conf (compose/redis/redis.conf).
"""

from __future__ import annotations

from typing import Any

from answers import Answers
from backend_services import POSTGRES_HOST, POSTGRES_PORT, REDIS_HOST, REDIS_PORT
from kubernetes_objects import Resources, env_var, object_name, secret_env, service, workload

REDIS_CONFIG_FILE = "redis.conf"
REDIS_CONFIG_IN_IMAGE = "/usr/local/etc/redis/redis.conf"
# redis.conf caps Redis at 256 MB (maxmemory), so its limit leaves room for the process around it.
POSTGRES_RESOURCES = Resources(cpu="250m", memory="256Mi", cpu_limit="1", memory_limit="1Gi")
REDIS_RESOURCES = Resources(cpu="100m", memory="128Mi", cpu_limit="500m", memory_limit="512Mi")
VOLUME_SIZE = "2Gi"


REDIS_CONFIG_MAP = "redis-conf"


def _volume_claim(size: str) -> list[dict[str, Any]]:
    return [
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
        }
    ]


def _exec_probe(script: str) -> dict[str, Any]:
    return {
        "exec": {"command": ["sh", "-c", script]},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 6,
    }


def _single_server(
    answers: Answers, name: str, port: int, container: dict[str, Any], volumes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    pod: dict[str, Any] = {"containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    statefulset = workload(
        answers,
        "StatefulSet",
        name,
        name,
        {"serviceName": name, "replicas": 1, "volumeClaimTemplates": _volume_claim(VOLUME_SIZE)},
        pod,
    )
    return [service(answers, name, name, {name: port}), statefulset]


def postgres_objects(answers: Answers, secret: str) -> list[dict[str, Any]]:
    container = {
        "name": "postgres",
        "image": f"postgres:{answers.images.postgres}",
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
        "env": [
            secret_env("POSTGRES_DB", secret),
            secret_env("POSTGRES_USER", secret),
            secret_env("POSTGRES_PASSWORD", secret),
            # A subdirectory: the volume's root may hold lost+found, which initdb refuses.
            env_var("PGDATA", "/var/lib/postgresql/data/pgdata"),
        ],
        "resources": POSTGRES_RESOURCES.as_dict(),
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
        "readinessProbe": _exec_probe('pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"'),
    }
    return _single_server(answers, POSTGRES_HOST, POSTGRES_PORT, container, [])


def redis_objects(answers: Answers, secret: str) -> list[dict[str, Any]]:
    container = {
        "name": "redis",
        "image": f"redis:{answers.images.redis}",
        "args": ["redis-server", REDIS_CONFIG_IN_IMAGE, "--requirepass", "$(REDIS_PASSWORD)"],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
        "env": [
            secret_env("REDIS_PASSWORD", secret),
            # redis-cli reads the password from here, so the probe keeps it off its command line.
            secret_env("REDISCLI_AUTH", secret, "REDIS_PASSWORD"),
        ],
        "resources": REDIS_RESOURCES.as_dict(),
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {
                "name": "conf",
                "mountPath": REDIS_CONFIG_IN_IMAGE,
                "subPath": REDIS_CONFIG_FILE,
                "readOnly": True,
            },
        ],
        "readinessProbe": _exec_probe("redis-cli ping | grep -q PONG"),
    }
    volumes = [{"name": "conf", "configMap": {"name": object_name(answers, REDIS_CONFIG_MAP)}}]
    return _single_server(answers, REDIS_HOST, REDIS_PORT, container, volumes)
