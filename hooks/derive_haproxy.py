"""compose/haproxy/haproxy.cfg: the TCP load balancer in front of an EMQX cluster, built from the node list.

MQTT connections are long-lived, so connections go to the node with the fewest (leastconn), idle timeouts
are longer than any sensible device keep-alive, and a node that fails its health check (EMQX's
unauthenticated GET /status on the dashboard port) has its connections closed so the clients reconnect to
a healthy node. Node names are resolved through Docker's DNS at run time, so the balancer starts even while
a node is still being created and follows a node whose container was recreated with a new address.
"""

from __future__ import annotations

from answers import Answers
from backend_services import EMQX_DASHBOARD_PORT, MQTT_PORT
from emqx_cluster import HAPROXY_MAX_CONNECTIONS, HAPROXY_MONITOR_PORT, HAPROXY_MONITOR_URI, compose_nodes

HEADER = (
    "# Generated from the template answers: regenerate (cruft update) rather than edit.\n"
    "# Devices and the backend connect to port {port} here; HAProxy spreads them over the EMQX nodes.\n"
)
BACKEND = "emqx_nodes"
RESOLVER = "docker"
# Docker's embedded DNS server, present in every user-defined network.
DOCKER_DNS = "127.0.0.11:53"


def _section(title: str, lines: list[str]) -> str:
    return title + "\n" + "".join(f"    {line}\n" for line in lines)


def haproxy_cfg(answers: Answers) -> str:
    servers = [f"server node{node.index} {node.hostname}:{MQTT_PORT}" for node in compose_nodes(answers)]
    sections = [
        _section("global", ["log stdout format raw local0 info", f"maxconn {HAPROXY_MAX_CONNECTIONS}"]),
        _section(
            "defaults",
            [
                "mode tcp",
                "option redispatch",
                "retries 3",
                "timeout connect 5s",
                # Idle MQTT connections only carry keep-alive pings: keep them far longer than a keep-alive.
                "timeout client 1h",
                "timeout server 1h",
                "timeout check 5s",
            ],
        ),
        _section(f"resolvers {RESOLVER}", [f"nameserver dns {DOCKER_DNS}", "hold valid 10s"]),
        _section(
            "frontend mqtt",
            [
                f"bind :{MQTT_PORT}",
                # A frontend's own default limit is far lower than the process's: state it.
                f"maxconn {HAPROXY_MAX_CONNECTIONS}",
                "log global",
                "option tcplog",
                "option dontlognull",
                f"default_backend {BACKEND}",
            ],
        ),
        _section(
            f"backend {BACKEND}",
            [
                "balance leastconn",
                "option httpchk",
                "http-check send meth GET uri /status ver HTTP/1.1 hdr Host localhost",
                "http-check expect status 200",
                f"default-server check port {EMQX_DASHBOARD_PORT} inter 5s fall 3 rise 2 "
                f"resolvers {RESOLVER} init-addr last,libc,none on-marked-down shutdown-sessions",
                *servers,
            ],
        ),
        _section(
            "frontend health",
            [
                "mode http",
                f"bind :{HAPROXY_MONITOR_PORT}",
                f"monitor-uri {HAPROXY_MONITOR_URI}",
                f"monitor fail if {{ nbsrv({BACKEND}) lt 1 }}",
            ],
        ),
    ]
    return HEADER.format(port=MQTT_PORT) + "\n" + "\n".join(sections)
