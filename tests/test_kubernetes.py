"""deploy/kubernetes/ of a bake: both overlays rendered by kubectl's own kustomize, every object validated
against the Kubernetes schema (kubernetes-validate, strict: an unknown field fails), and the properties the
deployment relies on checked on the rendered objects. No cluster runs here: what a kubelet would do with
an env value ($(NAME) expansion) is reproduced by `kubelet_expand`, following Kubernetes' documented rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from bake_variants import VARIANTS, compose_config, emqx_nodes, expected, read_env, run_in

K8S_VARIANTS = ("defaults", "edges_qos2_pbkdf2", "emqx_cluster_5_replicas", "acme_fleet", "edges_qos0_bcrypt")
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes release the manifests claim, and the newest schema the validator knows.
SCHEMA_VERSIONS = ("1.29.0", "1.37.0")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|COOKIE|REDISCLI_AUTH")
ANSWER_DEFAULTS = json.loads((Path(__file__).resolve().parents[1] / "cookiecutter.json").read_text())


@dataclass(frozen=True)
class Rendered:
    variant: str
    overlay: str
    project: Path
    objects: list[dict[str, Any]]

    @property
    def want(self) -> dict[str, Any]:
        return expected(self.variant)

    @property
    def prefix(self) -> str:
        return self.want["project_slug"].replace("_", "-")

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
        return found[0]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def config_map(self, generated_name: str) -> dict[str, Any]:
        """A generated ConfigMap by the name it was declared with (Kustomize appends a content hash)."""
        found = [
            o for o in self.of_kind("ConfigMap") if o["metadata"]["name"].rsplit("-", 1)[0] == generated_name
        ]
        assert len(found) == 1, generated_name
        return found[0]


@pytest.fixture(
    scope="module",
    params=[(variant, overlay) for variant in K8S_VARIANTS for overlay in OVERLAYS],
    ids=lambda param: f"{param[0]}-{param[1]}",
)
def rendered(request: pytest.FixtureRequest, bake_project, tools) -> Rendered:
    return render(bake_project, tools, *request.param)


def render(bake_project, tools, variant: str, overlay: str) -> Rendered:
    project = bake_project(VARIANTS[variant])
    result = run_in(project, str(tools.kubectl), "kustomize", f"deploy/kubernetes/overlays/{overlay}")
    assert result.returncode == 0, result.stderr
    objects = [document for document in yaml.safe_load_all(result.stdout) if document]
    assert objects
    return Rendered(variant, overlay, project, objects)


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return [o for o in rendered.objects if o["kind"] in WORKLOAD_KINDS]


def all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def kubelet_expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' expansion of an env value: $(NAME) becomes NAME's value if defined earlier, $$ is a
    literal $, anything else is kept as written."""
    out, index = [], 0
    while index < len(value):
        if value.startswith("$$", index):
            out.append("$")
            index += 2
        elif value.startswith("$(", index) and ")" in value[index:]:
            end = value.index(")", index)
            name = value[index + 2 : end]
            out.append(defined.get(name, value[index : end + 1]))
            index = end + 1
        else:
            out.append(value[index])
            index += 1
    return "".join(out)


def container_env(
    container: dict[str, Any], secret: dict[str, str], fields: dict[str, str]
) -> dict[str, str]:
    """The environment the kubelet gives a container (envFrom aside), with the Secret holding `secret`."""
    defined: dict[str, str] = {}
    for entry in container.get("env", []):
        source = entry.get("valueFrom")
        if source is None:
            defined[entry["name"]] = kubelet_expand(entry["value"], defined)
        elif "secretKeyRef" in source:
            defined[entry["name"]] = secret[source["secretKeyRef"]["key"]]
        else:
            defined[entry["name"]] = fields[source["fieldRef"]["fieldPath"]]
    return defined


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schema(rendered: Rendered, version: str) -> None:
    for document in rendered.objects:
        kubernetes_validate.validate(document, version, strict=True)


def test_every_object_lands_in_the_overlays_namespace(rendered: Rendered) -> None:
    namespace = rendered.prefix if rendered.overlay == "prod" else f"{rendered.prefix}-dev"
    assert {o["metadata"].get("namespace") for o in rendered.objects} == {namespace}


def test_handler_client_ids_are_distinct_and_stable_across_restarts(rendered: Rendered) -> None:
    """A StatefulSet pod is named <statefulset>-<ordinal> and keeps that name when it is restarted or
    rescheduled; the client id is computed from that name alone (not the pod's uid or IP), so each replica
    comes back under its own id and takes back its persistent session."""
    ids = {}
    for role, replicas in (
        ("handler", rendered.want["mqtt_handler_replicas"]),
        ("publisher", rendered.want["mqtt_publisher_replicas"]),
    ):
        name = f"{rendered.prefix}-mqtt-{role}"
        statefulset = rendered.one("StatefulSet", name)
        assert statefulset["spec"]["replicas"] == replicas
        (container,) = pod_spec(statefulset)["containers"]
        field_inputs = {e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
        assert field_inputs == {"metadata.name"}, "nothing that changes on a restart"

        def client_ids(
            container: dict[str, Any] = container, name: str = name, count: int = replicas
        ) -> list[str]:
            pods = [f"{name}-{ordinal}" for ordinal in range(count)]
            return [container_env(container, {}, {"metadata.name": pod})["MQTT_CLIENT_ID"] for pod in pods]

        ids[role] = client_ids()
        assert ids[role] == [f"{name}-{ordinal}" for ordinal in range(replicas)]
        assert client_ids() == ids[role], "a restarted pod gets its id back"
        assert len(set(ids[role])) == replicas
        # client_id_for() keeps an id that names its role as is: this is the id the broker sees.
        assert all(role in client_id for client_id in ids[role])
    assert not set(ids["handler"]) & set(ids["publisher"])


def test_beat_runs_exactly_once(rendered: Rendered) -> None:
    beat = rendered.one("Deployment", f"{rendered.prefix}-celery-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    runs_beat = [
        w["metadata"]["name"]
        for w in workloads(rendered)
        for c in all_containers(w)
        if any("celery-beat" in arg for arg in c.get("args", []))
    ]
    assert runs_beat == [beat["metadata"]["name"]]
    assert not rendered.of_kind("HorizontalPodAutoscaler")


def test_acl_and_emqx_config_equal_the_compose_ones_byte_for_byte(rendered: Rendered, tools) -> None:
    project = rendered.project
    files = rendered.config_map(f"{rendered.prefix}-emqx-files")["data"]
    assert files["acl.conf"].encode() == (project / "compose/emqx/acl.conf").read_bytes()
    assert files["entrypoint.sh"].encode() == (project / "compose/emqx/entrypoint.sh").read_bytes()

    statefulset = rendered.one("StatefulSet", f"{rendered.prefix}-emqx")
    (container,) = pod_spec(statefulset)["containers"]
    mounts = {m["mountPath"]: m.get("subPath") for m in container["volumeMounts"]}
    assert mounts["/opt/emqx/etc/acl.conf"] == "acl.conf"
    fields = {"metadata.name": f"{rendered.prefix}-emqx-0", "metadata.namespace": "ns"}
    kubernetes = container_env(container, read_env(project / ".env"), fields)

    # Compose after interpolating the same .env, with its $$ escape turned into the $ EMQX receives.
    services = compose_config(tools, project, "docker-compose.infra.yml")["services"]
    compose = {
        k: v.replace("$$", "$") for k, v in next(iter(emqx_nodes(services).values()))["environment"].items()
    }
    per_node = {"EMQX_NODE__NAME"} | {k for k in compose if k.startswith("EMQX_CLUSTER__")}
    shared = set(compose) - per_node
    assert {"EMQX_AUTHENTICATION", "EMQX_AUTHORIZATION", "EMQX_MQTT__MAX_INFLIGHT"} <= shared
    for name in sorted(shared):
        assert kubernetes[name].encode() == compose[name].encode(), name


def test_nothing_secret_is_in_the_manifests(rendered: Rendered) -> None:
    env = read_env(rendered.project / ".env")
    secrets = {name: value for name, value in env.items() if SECRET_NAMES.search(name) and value}
    assert len(secrets) >= 7
    sources = {
        str(path.relative_to(rendered.project)): path.read_text()
        for path in (rendered.project / "deploy").rglob("*")
        if path.is_file()
    }
    sources["kubectl kustomize output"] = yaml.safe_dump_all(rendered.objects)
    for where, text in sources.items():
        leaked = [name for name, value in secrets.items() if value in text]
        assert not leaked, f"{where} holds the value of {leaked}"
    assert not rendered.of_kind("Secret"), "the user creates the Secret from .env"
    for workload in workloads(rendered):
        for container in all_containers(workload):
            for entry in container.get("env", []):
                if SECRET_NAMES.search(entry["name"]):
                    assert "valueFrom" in entry, f"{workload['metadata']['name']}: {entry['name']}"


def test_every_image_is_pinned(rendered: Rendered) -> None:
    answers = {**ANSWER_DEFAULTS, **VARIANTS[rendered.variant]}
    images = {c["image"] for w in workloads(rendered) for c in all_containers(w)}
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag and tag and tag != "latest", image
    answered = {
        f"emqx/emqx:{answers['emqx_version']}",
        f"{rendered.want['project_slug']}-app:{answers['version']}",
    }
    if rendered.overlay == "dev":
        answered |= {f"postgres:{answers['postgres_version']}", f"redis:{answers['redis_version']}"}
    assert images == answered


def test_secret_and_config_map_references_resolve(rendered: Rendered) -> None:
    """Every ConfigMap a pod reads is rendered; every Secret key it reads is a name .env.example lists, so
    `kubectl create secret generic <prefix>-env --from-env-file=.env` provides it."""
    config_maps = {o["metadata"]["name"] for o in rendered.of_kind("ConfigMap")}
    env_names = set(read_env(rendered.project / ".env.example"))
    secret = f"{rendered.prefix}-env"
    for workload in workloads(rendered):
        spec = pod_spec(workload)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
        for container in all_containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                else:
                    assert source["secretRef"]["name"] == secret
            for entry in container.get("env", []):
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    assert reference["name"] == secret
                    assert reference["key"] in env_names, reference["key"]


def test_env_references_are_defined_before_use(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        for container in all_containers(workload):
            defined: set[str] = set()
            for entry in container.get("env", []):
                for name in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", entry.get("value", "")):
                    assert name in defined, (
                        f"{container['name']}: {entry['name']} uses $({name}) before it is set"
                    )
                defined.add(entry["name"])
            for argument in container.get("args", []):
                for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", argument):
                    assert name in defined, f"{container['name']}: argument uses $({name})"


def test_probes_use_health_and_emqx_status(rendered: Rendered) -> None:
    django = rendered.one("Deployment", f"{rendered.prefix}-django")
    (container,) = pod_spec(django)["containers"]
    readiness = container["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/health/" and readiness["port"] == "http"
    host = {h["name"]: h["value"] for h in readiness["httpHeaders"]}["Host"]
    allowed = read_env(rendered.project / ".env.example")["DJANGO_ALLOWED_HOSTS"].split(",")
    assert host in allowed, "the probe's Host must be an allowed host, or Django answers 400"
    assert "tcpSocket" in container["livenessProbe"]
    emqx = rendered.one("StatefulSet", f"{rendered.prefix}-emqx")
    (node,) = pod_spec(emqx)["containers"]
    ports = {p["name"]: p["containerPort"] for p in node["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = node[probe]["httpGet"]
        assert (check["path"], ports[check["port"]]) == ("/status", 18083), probe


def test_every_container_has_requests_and_limits(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        for container in all_containers(workload):
            resources = container["resources"]
            assert set(resources) == {"requests", "limits"}, container["name"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_replicated_workloads_have_disruption_budgets(rendered: Rendered) -> None:
    budgets = [b["spec"] for b in rendered.of_kind("PodDisruptionBudget")]
    covered = set()
    for workload in workloads(rendered):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["selector"]["matchLabels"].items() <= labels.items()]
        if matching:
            assert [b["maxUnavailable"] for b in matching] == [1]
            covered.add(labels["app.kubernetes.io/name"])
    assert covered == {"django", "mqtt-handler", "mqtt-publisher", "celery-worker", "emqx"}


def test_emqx_nodes_find_each_other_through_the_headless_service(rendered: Rendered) -> None:
    prefix = rendered.prefix
    statefulset = rendered.one("StatefulSet", f"{prefix}-emqx")
    assert statefulset["spec"]["replicas"] == rendered.want["emqx_nodes"]
    headless = rendered.one("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert {p["name"] for p in headless["spec"]["ports"]} >= {"ekka", "gen-rpc", "mqtt"}
    (container,) = pod_spec(statefulset)["containers"]
    namespace = rendered.objects[0]["metadata"]["namespace"]
    pod = f"{prefix}-emqx-2"
    env = container_env(
        container,
        read_env(rendered.project / ".env"),
        {"metadata.name": pod, "metadata.namespace": namespace},
    )
    domain = f"{headless['metadata']['name']}.{namespace}.svc.cluster.local"
    assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "dns"
    assert (env["EMQX_CLUSTER__DNS__NAME"], env["EMQX_CLUSTER__DNS__RECORD_TYPE"]) == (domain, "srv")
    assert env["EMQX_NODE__NAME"] == f"emqx@{pod}.{domain}", "the name an SRV record gives the pod"
    assert (
        headless["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    )


def test_migrations_run_once_before_the_app(rendered: Rendered) -> None:
    job = rendered.one("Job", f"{rendered.prefix}-migrate")
    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["python", "manage.py", "migrate", "--noinput"]
    migrating = [
        w["metadata"]["name"]
        for w in workloads(rendered)
        for c in all_containers(w)
        if "migrate" in c.get("args", [])
    ]
    assert migrating == [job["metadata"]["name"]]
    for component in ("django", "celery-worker"):
        init = pod_spec(rendered.one("Deployment", f"{rendered.prefix}-{component}"))["initContainers"]
        assert "manage.py migrate --check" in init[0]["args"][-1]
    for role in ("handler", "publisher"):
        init = pod_spec(rendered.one("StatefulSet", f"{rendered.prefix}-mqtt-{role}"))["initContainers"]
        assert "manage.py migrate --check" in init[0]["args"][-1]


def test_backend_reaches_the_cluster_services_by_name(rendered: Rendered) -> None:
    settings = rendered.config_map(f"{rendered.prefix}-settings")["data"]
    services = {o["metadata"]["name"] for o in rendered.of_kind("Service")}
    assert settings["MQTT_BROKER_HOST"] in services
    assert (settings["POSTGRES_HOST"], settings["REDIS_HOST"]) == ("postgres", "redis")
    # dev runs them in the namespace; prod points Services of these names at managed servers (README).
    assert (
        {"postgres", "redis"} <= services
        if rendered.overlay == "dev"
        else not {"postgres", "redis"} & services
    )
    if rendered.overlay == "prod":
        assert settings["DJANGO_DEBUG"] == "False"
        public = rendered.one("Service", f"{rendered.prefix}-emqx-public")
        assert public["spec"]["type"] == "LoadBalancer"


def test_ingress_routes_http_and_websockets_to_django(rendered: Rendered) -> None:
    (ingress,) = rendered.of_kind("Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix"), "covers /ws/connect/ too"
    backend = path["backend"]["service"]
    django = rendered.one("Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in django["spec"]["ports"]}
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


def test_flower_follows_the_answer(rendered: Rendered) -> None:
    names = {o["metadata"]["name"] for o in workloads(rendered)}
    assert (f"{rendered.prefix}-flower" in names) == rendered.want["use_flower"]


@pytest.mark.parametrize("variant", K8S_VARIANTS)
def test_readme_commands_name_the_rendered_objects(bake_project, tools, variant: str) -> None:
    """The generated README's kubectl commands work as written: their namespaces, Secret and object names
    are the ones in the manifests of the overlays."""
    overlays = [render(bake_project, tools, variant, overlay) for overlay in OVERLAYS]
    readme = (overlays[0].project / "README.md").read_text()
    prefix = overlays[0].prefix
    assert f"kubectl create namespace {prefix}\n" in readme
    names = set()
    for rendered in overlays:
        namespace = rendered.objects[0]["metadata"]["namespace"]
        assert re.search(rf"kubectl -n {re.escape(namespace)} ", readme), namespace
        assert f"kubectl apply -k deploy/kubernetes/overlays/{rendered.overlay}" in readme
        names |= {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
        (secret,) = {
            source["secretRef"]["name"]
            for workload in workloads(rendered)
            for container in all_containers(workload)
            for source in container.get("envFrom", [])
            if "secretRef" in source
        }
        assert f"create secret generic {secret} --from-env-file=" in readme
    kinds = {"deploy": "Deployment", "svc": "Service", "job": "Job", "service": "Service"}
    name = rf"({re.escape(prefix)}-[a-z0-9-]+)"
    referenced = re.findall(rf"\b(deploy|svc)/{name}|(?:delete|get) (job|service) {name}", readme)
    assert len(referenced) >= 5
    for short, short_name, verb_kind, verb_name in referenced:
        kind = kinds[short or verb_kind]
        assert (kind, short_name or verb_name) in names, f"README names {kind} {short_name or verb_name}"
    retire = re.search(r"--client-id ([a-z0-9-]+)-<ordinal>", readme)
    assert retire and ("StatefulSet", retire.group(1)) in names
