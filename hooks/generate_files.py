"""Write every file derived from the answers into the generated project, deterministically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from answers import Answers
from derive_acl import acl_conf
from derive_compose import app_compose, infra_compose
from derive_haproxy import haproxy_cfg
from derive_kubernetes import kubernetes_files
from derive_python_modules import password_scheme_source, topology_source
from emqx_cluster import HAPROXY_CONFIG, is_cluster

GENERATED_HEADER = "# Generated from the template answers: regenerate (cruft update) rather than edit.\n"


class _ComposeDumper(yaml.SafeDumper):
    """SafeDumper that indents lists under their key, as compose files are usually written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def generated_yaml(data: dict[str, Any] | list[dict[str, Any]]) -> str:
    """A compose file or kustomization (a dict), or Kubernetes manifests (a list: one document each)."""
    documents = data if isinstance(data, list) else [data]
    # width: long EMQX config strings stay on one line instead of being folded.
    body = yaml.dump_all(documents, Dumper=_ComposeDumper, sort_keys=False, width=100000, allow_unicode=False)
    return GENERATED_HEADER + body


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def write_derived_files(project: Path, answers: Answers) -> None:
    _write(project / "docker-compose.infra.yml", generated_yaml(infra_compose(answers)))
    _write(project / "docker-compose.app.yml", generated_yaml(app_compose(answers)))
    _write(project / "compose/emqx/acl.conf", acl_conf(answers))
    if is_cluster(answers):
        _write(project / HAPROXY_CONFIG, haproxy_cfg(answers))
    copied = {
        "emqx_entrypoint": (project / "compose/emqx/entrypoint.sh").read_text(encoding="utf-8"),
        "redis_conf": (project / "compose/redis/redis.conf").read_text(encoding="utf-8"),
    }
    for path, content in kubernetes_files(answers, **copied).items():
        _write(project / path, content if isinstance(content, str) else generated_yaml(content))
    _write(project / "src/apps/mqtt_service/topology.py", topology_source(answers))
    _write(project / "src/apps/devices/password_scheme.py", password_scheme_source(answers))
