"""The EMQX nodes of the compose infra project and, for a cluster, the load balancer in front of them.

One node is the service `emqx`. A cluster (emqx_nodes 3 or 5) is `emqx-1` ... `emqx-N`, joined by EMQX's
static discovery, behind the HAProxy service `emqx-lb` that devices and the backend connect to. Every node
has a stable name, emqx@node<N>.emqx.local: EMQX keys its data directory on it, and each node's network
alias makes it resolvable by its peers.
"""

from __future__ import annotations

from dataclasses import dataclass

from answers import Answers
from backend_services import EMQX_DASHBOARD_PORT, MQTT_PORT

HOST_DOMAIN = "emqx.local"
# Host ports come from .env (several projects can run side by side), with these defaults: MQTT on the port the
# backend also uses natively, node n's dashboard on 18083 + n - 1.
MQTT_HOST_PORT = "${MQTT_BROKER_PORT:-" + str(MQTT_PORT) + "}"
LOAD_BALANCER_SERVICE = "emqx-lb"
# The official image, an LTS branch, pinned to a patch release.
HAPROXY_IMAGE = "haproxy:3.0.5"
HAPROXY_CONFIG = "compose/haproxy/haproxy.cfg"
HAPROXY_CONFIG_IN_IMAGE = "/usr/local/etc/haproxy/haproxy.cfg"
# HTTP port of the load balancer's own health endpoint (inside the network only).
HAPROXY_MONITOR_PORT = 8404
HAPROXY_MONITOR_URI = "/healthz"
# Connections held at once. Each takes two file descriptors (device side and node side), and HAProxy
# refuses to start when it cannot raise its descriptor limit that far, so the compose service's nofile
# limit is derived from it, with room for listeners, health checks and DNS.
HAPROXY_MAX_CONNECTIONS = 100000
HAPROXY_OPEN_FILES = 2 * HAPROXY_MAX_CONNECTIONS + 4096


@dataclass(frozen=True)
class ComposeNode:
    index: int
    service: str
    hostname: str
    dashboard_port: int
    data_volume: str
    log_volume: str

    @property
    def node_name(self) -> str:
        return f"emqx@{self.hostname}"

    @property
    def dashboard_port_variable(self) -> str:
        """The .env name of this node's dashboard port: EMQX_DASHBOARD_PORT, EMQX_NODE_2_DASHBOARD_PORT ..."""
        return "EMQX_DASHBOARD_PORT" if self.index == 1 else f"EMQX_NODE_{self.index}_DASHBOARD_PORT"

    @property
    def dashboard_host_port(self) -> str:
        return "${" + self.dashboard_port_variable + ":-" + str(self.dashboard_port) + "}"


def is_cluster(answers: Answers) -> bool:
    return answers.emqx_nodes > 1


def compose_nodes(answers: Answers) -> list[ComposeNode]:
    """The nodes in order; each dashboard is published on its own host port (18083, 18084, ...)."""
    if not is_cluster(answers):
        return [ComposeNode(1, "emqx", f"node1.{HOST_DOMAIN}", EMQX_DASHBOARD_PORT, "emqx_data", "emqx_log")]
    return [
        ComposeNode(
            index,
            f"emqx-{index}",
            f"node{index}.{HOST_DOMAIN}",
            EMQX_DASHBOARD_PORT + index - 1,
            f"emqx_data_{index}",
            f"emqx_log_{index}",
        )
        for index in range(1, answers.emqx_nodes + 1)
    ]


def broker_host(answers: Answers) -> str:
    """Where the backend's MQTT services connect inside the compose network."""
    return LOAD_BALANCER_SERVICE if is_cluster(answers) else compose_nodes(answers)[0].service
