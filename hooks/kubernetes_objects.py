"""Small builders of Kubernetes objects as plain dicts (dumped to YAML by generate_files).

Every call returns fresh dicts, so the YAML dump has no anchors and one object never aliases another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from answers import Answers


@dataclass(frozen=True)
class Resources:
    """Requests (what the scheduler reserves) and limits (where the kernel throttles or kills)."""

    cpu: str
    memory: str
    cpu_limit: str
    memory_limit: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {"cpu": self.cpu, "memory": self.memory},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


def name_prefix(answers: Answers) -> str:
    """The slug as a DNS label (Kubernetes names allow no `_`), short enough for every suffix."""
    return answers.kubernetes_name


def object_name(answers: Answers, suffix: str) -> str:
    """The name of one of the project's objects: <prefix>-<suffix>."""
    return f"{name_prefix(answers)}-{suffix}"


def selector_labels(answers: Answers, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": name_prefix(answers)}


def labels(answers: Answers, component: str) -> dict[str, str]:
    return {**selector_labels(answers, component), "app.kubernetes.io/part-of": name_prefix(answers)}


def metadata(answers: Answers, name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "labels": labels(answers, component), **extra}


def env_var(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def secret_env(name: str, secret: str, key: str | None = None) -> dict[str, Any]:
    """An environment variable read from one key of the user's Secret."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key or name}}}


def field_env(name: str, field_path: str) -> dict[str, Any]:
    """An environment variable from the downward API (the pod's own name or namespace)."""
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def http_probe(
    path: str, port: str | int, period: int, failures: int, host: str | None = None
) -> dict[str, Any]:
    http_get: dict[str, Any] = {"path": path, "port": port}
    if host:
        http_get["httpHeaders"] = [{"name": "Host", "value": host}]
    return {"httpGet": http_get, "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failures}


def tcp_probe(port: str | int, period: int, failures: int) -> dict[str, Any]:
    return {
        "tcpSocket": {"port": port},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def container_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security(uid: int) -> dict[str, Any]:
    """fsGroup makes persistent volumes writable by the image's non-root user."""
    return {"fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}


def service(
    answers: Answers, name: str, component: str, ports: dict[str, int], **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {**spec, "selector": selector_labels(answers, component)}
    if ports:
        body["ports"] = [
            {"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}
            for port_name, port in ports.items()
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(answers, name, component),
        "spec": body,
    }


def headless_service(answers: Answers, name: str, component: str, ports: dict[str, int]) -> dict[str, Any]:
    """The Service a StatefulSet's pods get their stable DNS names from (<pod>.<service>)."""
    return service(answers, name, component, ports, clusterIP="None", publishNotReadyAddresses=True)


def disruption_budget(answers: Answers, name: str, component: str) -> dict[str, Any]:
    """At most one pod of the component may be evicted at a time (a node drain waits for the next)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(answers, name, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(answers, component)}},
    }


def pod_template(answers: Answers, component: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": labels(answers, component)}, "spec": spec}


def workload(
    answers: Answers, kind: str, name: str, component: str, spec: dict[str, Any], pod: dict[str, Any]
) -> dict[str, Any]:
    """A Deployment or StatefulSet whose selector matches the labels of its pod template."""
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": metadata(answers, name, component),
        "spec": {
            **spec,
            "selector": {"matchLabels": selector_labels(answers, component)},
            "template": pod_template(answers, component, pod),
        },
    }
