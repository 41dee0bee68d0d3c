"""EMQX on Kubernetes: a StatefulSet whose pods find each other through DNS (the SRV records of a headless
Service), running with the same node environment, acl.conf and entrypoint as the compose nodes.

Why a StatefulSet and not the EMQX Operator: it needs nothing installed in the cluster beyond Kubernetes
itself (the operator needs its CRDs, its controller and cert-manager), every object validates against the
core Kubernetes schema, and the node environment comes from the very function compose uses.
"""

from __future__ import annotations

from typing import Any

import emqx_node
from answers import Answers
from backend_services import EMQX_DASHBOARD_PORT, MQTT_PORT
from emqx_node import EnvRef
from kubernetes_objects import (
    Resources,
    container_security,
    disruption_budget,
    env_var,
    field_env,
    headless_service,
    http_probe,
    object_name,
    pod_security,
    secret_env,
    selector_labels,
    service,
    workload,
)

COMPONENT = "emqx"
ACL_FILE = "acl.conf"
ENTRYPOINT_FILE = "entrypoint.sh"
# The usual DNS domain of a cluster's Services (the README says how to patch it for another).
CLUSTER_DOMAIN = "cluster.local"
# One node holds sessions, routes and retained messages in memory; see the README's scale guide.
RESOURCES = Resources(cpu="500m", memory="512Mi", cpu_limit="2", memory_limit="2Gi")
DATA_VOLUME_SIZE = "1Gi"
CLIENT_PORTS = {"mqtt": MQTT_PORT, "dashboard": EMQX_DASHBOARD_PORT}


# Name suffixes: the StatefulSet and the Service the backend connects to (kube-proxy spreads connections
# over the ready nodes), the headless Service behind the nodes' DNS names, the ConfigMap of acl.conf and
# the entrypoint.
NODES = "emqx"
HEADLESS = "emqx-headless"
FILES = "emqx-files"


class _SecretReferences:
    """Writes .env values as references to the user's Secret, remembering the ones used inside strings."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.embedded: list[str] = []

    def embed(self, ref: EnvRef) -> str:
        # Kubernetes expands $(NAME) from variables defined EARLIER in the same container's env.
        if ref.name not in self.embedded:
            self.embedded.append(ref.name)
        return f"$({ref.name})"

    def entry(self, name: str, value: str | EnvRef) -> dict[str, Any]:
        # A .env value with a compose default is in .env.example too, so the Secret built from .env has it.
        if isinstance(value, EnvRef):
            return secret_env(name, self.secret, value.name)
        return env_var(name, value)


def emqx_environment(answers: Answers, secret: str) -> list[dict[str, Any]]:
    """The pod's name and namespace, the Secret values embedded below, DNS discovery, then the node env."""
    references = _SecretReferences(secret)
    # `$$` is Kubernetes' escape for a literal `$` (EMQX's ${username} placeholder in the query).
    shared = emqx_node.node_environment(answers, references.embed, dollar="$$")
    dns_name = f"{object_name(answers, HEADLESS)}.$(POD_NAMESPACE).svc.{CLUSTER_DOMAIN}"
    return [
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        *(secret_env(name, secret) for name in references.embedded),
        env_var("EMQX_CLUSTER__DISCOVERY_STRATEGY", "dns"),
        env_var("EMQX_CLUSTER__DNS__NAME", dns_name),
        # SRV records name each pod by its stable host name, <pod>.<headless service>...
        env_var("EMQX_CLUSTER__DNS__RECORD_TYPE", "srv"),
        # ... so the node name is that host name too: stable across restarts, and the key of its data.
        env_var("EMQX_NODE__NAME", "emqx@$(POD_NAME).$(EMQX_CLUSTER__DNS__NAME)"),
        *(references.entry(name, value) for name, value in shared.items()),
    ]


def _status_probe(period: int, failures: int) -> dict[str, Any]:
    return http_probe("/status", "dashboard", period, failures)


def emqx_objects(answers: Answers, secret: str) -> list[dict[str, Any]]:
    ports = {**CLIENT_PORTS, **emqx_node.CLUSTER_PORTS}
    container = {
        "name": "emqx",
        "image": f"emqx/emqx:{answers.images.emqx}",
        "command": ["/bin/sh", emqx_node.ENTRYPOINT],
        "args": list(emqx_node.COMMAND),
        "ports": [{"name": name, "containerPort": port} for name, port in ports.items()],
        "env": emqx_environment(answers, secret),
        "resources": RESOURCES.as_dict(),
        "securityContext": container_security(emqx_node.UID),
        "volumeMounts": [
            {"name": "data", "mountPath": emqx_node.DATA_DIR},
            {"name": "log", "mountPath": emqx_node.LOG_DIR},
            {"name": "files", "mountPath": "/opt/emqx/etc/acl.conf", "subPath": ACL_FILE, "readOnly": True},
            {
                "name": "files",
                "mountPath": emqx_node.ENTRYPOINT,
                "subPath": ENTRYPOINT_FILE,
                "readOnly": True,
            },
        ],
        # Joining the cluster and loading the data can take a while on the first start.
        "startupProbe": _status_probe(period=5, failures=60),
        "readinessProbe": _status_probe(period=10, failures=3),
        "livenessProbe": _status_probe(period=15, failures=4),
    }
    pod = {
        "securityContext": pod_security(emqx_node.UID),
        "terminationGracePeriodSeconds": 60,
        # Nodes on different machines, where the cluster has several: one machine lost costs one node.
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(answers, COMPONENT)},
            }
        ],
        "containers": [container],
        "volumes": [
            {"name": "files", "configMap": {"name": object_name(answers, FILES)}},
            {"name": "log", "emptyDir": {}},
        ],
    }
    statefulset = workload(
        answers,
        "StatefulSet",
        object_name(answers, NODES),
        COMPONENT,
        {
            "serviceName": object_name(answers, HEADLESS),
            "replicas": answers.emqx_nodes,
            # Nodes start together and find each other; none waits for the previous one to be ready.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": DATA_VOLUME_SIZE}},
                    },
                }
            ],
        },
        pod,
    )
    return [
        headless_service(answers, object_name(answers, HEADLESS), COMPONENT, ports),
        service(answers, object_name(answers, NODES), COMPONENT, dict(CLIENT_PORTS)),
        statefulset,
        disruption_budget(answers, object_name(answers, NODES), COMPONENT),
    ]
