"""deploy/kubernetes/: Kustomize base and overlays (dev, prod), derived from the answers model.

Kustomize because it is built into kubectl (`kubectl apply -k`), needs no templating language, and fits
the two differences between environments exactly: the dev overlay adds its own PostgreSQL and Redis, the
prod overlay exposes MQTT to devices and turns Django's production settings on. Its ConfigMap generator
also names each ConfigMap after a hash of its content, so a changed acl.conf rolls the EMQX pods.

acl.conf and the EMQX entrypoint are written next to the base's kustomization (Kustomize reads no file
outside its folder) from the same sources as compose's: the ACL from derive_acl, the entrypoint and
redis.conf copied from compose/.
"""

from __future__ import annotations

from typing import Any

from answers import Answers
from backend_services import MQTT_PORT, backend_environment
from derive_acl import acl_conf
from kubernetes_app import SECRET, SETTINGS, app_documents, app_image_name
from kubernetes_dev import REDIS_CONFIG_FILE, REDIS_CONFIG_MAP, postgres_objects, redis_objects
from kubernetes_emqx import ACL_FILE, COMPONENT, ENTRYPOINT_FILE, FILES, NODES, emqx_objects
from kubernetes_objects import name_prefix, object_name, service

ROOT = "deploy/kubernetes"
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
# Production settings the prod overlay sets over .env's development values; TLS ends at the Ingress,
# which tells Django through X-Forwarded-Proto.
PRODUCTION_SETTINGS = {"DJANGO_DEBUG": "False", "DJANGO_SECURE_PROXY_SSL_HEADER": "True"}

Documents = list[dict[str, Any]]


def _literals(values: dict[str, str]) -> list[str]:
    return [f"{name}={value}" for name, value in values.items()]


def cluster_settings(answers: Answers) -> dict[str, str]:
    """The settings ConfigMap: the in-cluster addresses, over the native ones of the Secret's .env values."""
    return backend_environment(object_name(answers, NODES))


def _kustomization(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", **fields}


def _images(answers: Answers) -> list[dict[str, str]]:
    name = app_image_name(answers)
    return [{"name": name, "newName": name, "newTag": answers.version}]


def _base(answers: Answers) -> dict[str, Any]:
    secret = object_name(answers, SECRET)
    documents: dict[str, Documents] = {**app_documents(answers), "emqx.yaml": emqx_objects(answers, secret)}
    kustomization = _kustomization(
        resources=sorted(documents),
        configMapGenerator=[
            {"name": object_name(answers, SETTINGS), "literals": _literals(cluster_settings(answers))},
            {
                "name": object_name(answers, FILES),
                "files": [f"emqx/{ACL_FILE}", f"emqx/{ENTRYPOINT_FILE}"],
            },
        ],
    )
    return {"kustomization.yaml": kustomization, **documents}


def _dev(answers: Answers) -> dict[str, Any]:
    secret = object_name(answers, SECRET)
    kustomization = _kustomization(
        namespace=object_name(answers, "dev"),
        resources=["../../base", "postgres.yaml", "redis.yaml"],
        configMapGenerator=[{"name": object_name(answers, REDIS_CONFIG_MAP), "files": [REDIS_CONFIG_FILE]}],
        images=_images(answers),
    )
    return {
        "kustomization.yaml": kustomization,
        "postgres.yaml": postgres_objects(answers, secret),
        "redis.yaml": redis_objects(answers, secret),
    }


def _prod(answers: Answers) -> dict[str, Any]:
    public = service(
        answers, object_name(answers, "emqx-public"), COMPONENT, {"mqtt": MQTT_PORT}, type="LoadBalancer"
    )
    kustomization = _kustomization(
        namespace=name_prefix(answers),
        resources=["../../base", "emqx-public.yaml"],
        configMapGenerator=[
            {
                "name": object_name(answers, SETTINGS),
                "behavior": "merge",
                "literals": _literals(PRODUCTION_SETTINGS),
            }
        ],
        images=_images(answers),
    )
    return {"kustomization.yaml": kustomization, "emqx-public.yaml": [public]}


def kubernetes_files(answers: Answers, emqx_entrypoint: str, redis_conf: str) -> dict[str, Any]:
    """Path under the project -> a YAML document list or dict, or the text of a copied file."""
    files: dict[str, Any] = {}
    for folder, contents in (
        ("base", _base(answers)),
        ("overlays/dev", _dev(answers)),
        ("overlays/prod", _prod(answers)),
    ):
        files.update({f"{ROOT}/{folder}/{name}": content for name, content in contents.items()})
    files[f"{ROOT}/base/emqx/{ACL_FILE}"] = acl_conf(answers)
    files[f"{ROOT}/base/emqx/{ENTRYPOINT_FILE}"] = emqx_entrypoint
    files[f"{ROOT}/overlays/dev/{REDIS_CONFIG_FILE}"] = redis_conf
    return files
