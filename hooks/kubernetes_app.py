"""The backend on Kubernetes: Django (ASGI) behind an Ingress, the migrate Job, the MQTT handler and publisher
replicas, Celery worker and beat, and Flower when answered. Every container runs the app image with the
same start scripts as compose, and reads the user's Secret (built from .env) overridden by the settings
ConfigMap (in-cluster addresses and the broker users), as compose's `environment:` overrides `env_file`.

Migrations run once, in the migrate Job; every other pod that touches the database first waits in an init
container until `migrate --check` passes. Running `migrate` in an init container of each replica instead
would let several replicas migrate at once, which Django does not guard against.
"""

from __future__ import annotations

from typing import Any

from answers import Answers
from backend_services import DJANGO_PORT, FLOWER_PORT, MQTT_STOP_GRACE_SECONDS, start_script
from kubernetes_objects import (
    Resources,
    container_security,
    disruption_budget,
    env_var,
    field_env,
    headless_service,
    http_probe,
    metadata,
    object_name,
    pod_security,
    pod_template,
    service,
    tcp_probe,
    workload,
)

# uid of the app image's user (compose/django/Dockerfile).
APP_UID = 1000
DJANGO_REPLICAS = 2
CELERY_WORKER_REPLICAS = 2
# The health probe's Host header: keep it in DJANGO_ALLOWED_HOSTS (compose's health check uses it too).
PROBE_HOST = "127.0.0.1"
# An ASGI server with WebSockets: a socket is idle between pushes, so the proxy must not cut it after 60 s.
INGRESS_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
}
WAIT_FOR_MIGRATIONS = (
    "until python manage.py migrate --check >/dev/null 2>&1; do "
    "echo 'waiting until the migrate Job has applied the migrations' >&2; sleep 3; done"
)
# A handler replica is one asyncio process: one core is its ceiling (see the README's scale guide).
RESOURCES = {
    "django": Resources(cpu="250m", memory="384Mi", cpu_limit="1", memory_limit="768Mi"),
    "migrate": Resources(cpu="100m", memory="256Mi", cpu_limit="1", memory_limit="512Mi"),
    "mqtt-handler": Resources(cpu="500m", memory="256Mi", cpu_limit="1", memory_limit="512Mi"),
    "mqtt-publisher": Resources(cpu="250m", memory="192Mi", cpu_limit="1", memory_limit="384Mi"),
    "celery-worker": Resources(cpu="250m", memory="256Mi", cpu_limit="1", memory_limit="512Mi"),
    "celery-beat": Resources(cpu="50m", memory="160Mi", cpu_limit="250m", memory_limit="320Mi"),
    "flower": Resources(cpu="50m", memory="160Mi", cpu_limit="250m", memory_limit="320Mi"),
    "wait-for-migrations": Resources(cpu="50m", memory="192Mi", cpu_limit="500m", memory_limit="384Mi"),
}


def app_image_name(answers: Answers) -> str:
    """The app image as the overlays' `images:` entry names it (the user points it at their registry)."""
    return f"{answers.project_slug}-app"


# Name suffixes of the Secret the user creates from .env (README: kubectl create secret generic ...
# --from-env-file) and of the settings ConfigMap that overrides it.
SECRET = "env"
SETTINGS = "settings"


def _app_container(
    answers: Answers, name: str, args: list[str], env: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": f"{app_image_name(answers)}:{answers.version}",
        "args": args,
        # The ConfigMap comes last: where both hold a name, its value wins.
        "envFrom": [
            {"secretRef": {"name": object_name(answers, SECRET)}},
            {"configMapRef": {"name": object_name(answers, SETTINGS)}},
        ],
        "resources": RESOURCES[name].as_dict(),
        "securityContext": container_security(APP_UID),
    }
    if env:
        container["env"] = env
    return container


def _pod(
    answers: Answers, container: dict[str, Any], wait_for_migrations: bool, grace: int = 30
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "securityContext": pod_security(APP_UID),
        "terminationGracePeriodSeconds": grace,
        "containers": [container],
    }
    if wait_for_migrations:
        pod["initContainers"] = [
            _app_container(answers, "wait-for-migrations", ["sh", "-c", WAIT_FOR_MIGRATIONS])
        ]
    return pod


def _django(answers: Answers) -> list[dict[str, Any]]:
    container = _app_container(answers, "django", [start_script("django")])
    container["ports"] = [{"name": "http", "containerPort": DJANGO_PORT}]
    # Liveness asks only "does the server answer": /health/ also fails while PostgreSQL, Redis or the
    # broker is down, and restarting Django would not bring them back. Readiness takes the pod out of the
    # Service until /health/ is green again.
    container["startupProbe"] = tcp_probe("http", period=5, failures=60)
    container["livenessProbe"] = tcp_probe("http", period=10, failures=3)
    container["readinessProbe"] = http_probe("/health/", "http", period=10, failures=3, host=PROBE_HOST)
    deployment = workload(
        answers,
        "Deployment",
        object_name(answers, "django"),
        "django",
        {
            "replicas": DJANGO_REPLICAS,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        },
        _pod(answers, container, wait_for_migrations=True),
    )
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(
            answers, object_name(answers, "django"), "django", annotations=dict(INGRESS_ANNOTATIONS)
        ),
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": object_name(answers, "django"),
                                        "port": {"name": "http"},
                                    }
                                },
                            }
                        ]
                    }
                }
            ]
        },
    }
    return [
        service(answers, object_name(answers, "django"), "django", {"http": DJANGO_PORT}),
        deployment,
        disruption_budget(answers, object_name(answers, "django"), "django"),
        ingress,
    ]


def _migrate_job(answers: Answers) -> dict[str, Any]:
    container = _app_container(
        answers,
        "migrate",
        ["python", "manage.py", "migrate", "--noinput"],
        env=[env_var("WAIT_FOR_SERVICES", "postgres")],
    )
    pod = _pod(answers, container, wait_for_migrations=False)
    pod["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(answers, object_name(answers, "migrate"), "migrate"),
        "spec": {
            "backoffLimit": 6,
            # Removed an hour after it finished, so the next `kubectl apply -k` runs it again.
            "ttlSecondsAfterFinished": 3600,
            "template": pod_template(answers, "migrate", pod),
        },
    }


def mqtt_replicas(answers: Answers, role: str, replicas: int) -> list[dict[str, Any]]:
    """Handler or publisher replicas as a StatefulSet: pod <prefix>-mqtt-<role>-<ordinal> keeps its name
    across restarts, and that name is its MQTT client id (the handler's persistent session, the
    publisher's Redis consumer), so a restarted replica takes back its own session and pending commands."""
    component = f"mqtt-{role}"
    name = object_name(answers, component)
    container = _app_container(
        answers,
        component,
        [start_script(component)],
        env=[field_env("POD_NAME", "metadata.name"), env_var("MQTT_CLIENT_ID", "$(POD_NAME)")],
    )
    statefulset = workload(
        answers,
        "StatefulSet",
        name,
        component,
        {
            "serviceName": name,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
        },
        _pod(answers, container, wait_for_migrations=True, grace=MQTT_STOP_GRACE_SECONDS),
    )
    return [
        headless_service(answers, name, component, {}),
        statefulset,
        disruption_budget(answers, name, component),
    ]


def _celery(answers: Answers) -> list[dict[str, Any]]:
    worker = workload(
        answers,
        "Deployment",
        object_name(answers, "celery-worker"),
        "celery-worker",
        {"replicas": CELERY_WORKER_REPLICAS},
        _pod(
            answers,
            _app_container(answers, "celery-worker", [start_script("celery-worker")]),
            wait_for_migrations=True,
        ),
    )
    # Exactly one beat, ever: two would send every scheduled task twice, and a rolling update would run
    # the old and the new pod side by side, so the old one is stopped before the new one starts.
    beat = workload(
        answers,
        "Deployment",
        object_name(answers, "celery-beat"),
        "celery-beat",
        {"replicas": 1, "strategy": {"type": "Recreate"}},
        # start-celery-beat.sh waits for the migrations itself.
        _pod(
            answers,
            _app_container(answers, "celery-beat", [start_script("celery-beat")]),
            wait_for_migrations=False,
        ),
    )
    return [worker, disruption_budget(answers, object_name(answers, "celery-worker"), "celery-worker"), beat]


def _flower(answers: Answers) -> list[dict[str, Any]]:
    container = _app_container(answers, "flower", [start_script("flower")])
    container["ports"] = [{"name": "http", "containerPort": FLOWER_PORT}]
    # Every page needs basic auth, so a TCP check is what can be asked without the password.
    container["readinessProbe"] = tcp_probe("http", period=10, failures=3)
    deployment = workload(
        answers,
        "Deployment",
        object_name(answers, "flower"),
        "flower",
        {"replicas": 1},
        _pod(answers, container, wait_for_migrations=False),
    )
    return [service(answers, object_name(answers, "flower"), "flower", {"http": FLOWER_PORT}), deployment]


def app_documents(answers: Answers) -> dict[str, list[dict[str, Any]]]:
    """File name in base/ -> its objects."""
    documents = {
        "django.yaml": _django(answers),
        "migrate-job.yaml": [_migrate_job(answers)],
        "mqtt-handler.yaml": mqtt_replicas(answers, "handler", answers.mqtt_handler_replicas),
        "mqtt-publisher.yaml": mqtt_replicas(answers, "publisher", answers.mqtt_publisher_replicas),
        "celery.yaml": _celery(answers),
    }
    if answers.use_flower:
        documents["flower.yaml"] = _flower(answers)
    return documents
