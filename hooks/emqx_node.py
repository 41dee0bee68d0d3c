"""What every EMQX node runs with, on compose and on Kubernetes alike: the authentication chain, the file
authorization (acl.conf), listener and session sizing, the dashboard login and the backend's bootstrap
users. Only a node's name and the way it finds its peers differ per platform; the caller adds those.

Values that live in the user's .env (secrets, and the superuser's name) are EnvRef: each platform writes a
reference in its own syntax (compose interpolation, a Kubernetes secretKeyRef or $(NAME)), so no secret value
is ever written into a generated file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import derive_emqx
from answers import Answers
from derive_emqx import EnvReference

# The image's own entrypoint runs after ours (compose/emqx/entrypoint.sh), which writes the bootstrap users.
ENTRYPOINT = "/opt/emqx/compose-entrypoint.sh"
COMMAND = ("/opt/emqx/bin/emqx", "foreground")
DATA_DIR = "/opt/emqx/data"
LOG_DIR = "/opt/emqx/log"
# The image runs EMQX as this uid; mounted files and volumes must be readable (data: writable) by it.
UID = 1000
# Erlang distribution (ekka) and EMQX's RPC between nodes of a cluster.
CLUSTER_PORTS = {"ekka": 4370, "gen-rpc": 5369}


@dataclass(frozen=True)
class EnvRef:
    """The value of `name` in the user's .env. A default marks a non-secret the user may leave unset."""

    name: str
    default: str | None = None


def node_environment(
    answers: Answers, embed: Callable[[EnvRef], str], dollar: str
) -> dict[str, str | EnvRef]:
    """The environment of one EMQX node, minus its name and cluster discovery.

    `embed` writes a reference to a .env value inside a longer string (the HOCON of the authenticator);
    `dollar` is how the platform writes a literal `$` (both compose and Kubernetes read `$$` as `$`).
    """
    postgres = {
        "database": EnvReference(embed(EnvRef("POSTGRES_DB"))),
        "username": EnvReference(embed(EnvRef("POSTGRES_USER"))),
        "password": EnvReference(embed(EnvRef("POSTGRES_PASSWORD"))),
    }
    chain = derive_emqx.authentication_chain(answers, postgres)
    root_username = EnvRef("MQTT_ROOT_USERNAME", answers.root_username)
    return {
        "EMQX_NODE__COOKIE": EnvRef("EMQX_NODE_COOKIE"),
        "EMQX_DASHBOARD__DEFAULT_USERNAME": root_username,
        "EMQX_DASHBOARD__DEFAULT_PASSWORD": EnvRef("MQTT_ROOT_PASSWORD"),
        "EMQX_AUTHENTICATION": derive_emqx.to_hocon(chain, dollar=dollar),
        "EMQX_AUTHORIZATION": derive_emqx.to_hocon(derive_emqx.authorization(), dollar=dollar),
        "EMQX_LISTENERS__TCP__DEFAULT__ENABLE_AUTHN": "quick_deny_anonymous",
        "EMQX_MQTT__SHARED_SUBSCRIPTION_STRATEGY": "hash_clientid",
        "EMQX_MQTT__MAX_MQUEUE_LEN": str(derive_emqx.MAX_MQUEUE_LEN),
        "EMQX_MQTT__MAX_INFLIGHT": str(derive_emqx.MAX_INFLIGHT),
        # Device presence: the handler reads the client connected/disconnected events (on by default; pinned,
        # as the backend depends on them).
        "EMQX_SYS_TOPICS__SYS_EVENT_MESSAGES": derive_emqx.to_hocon(derive_emqx.CLIENT_EVENT_MESSAGES),
        # Read by the entrypoint to write the built-in database's bootstrap users.
        "EMQX_BOOTSTRAP_USERS_FILE": derive_emqx.BOOTSTRAP_USERS_FILE,
        "MQTT_ROOT_USERNAME": root_username,
        "MQTT_ROOT_PASSWORD": EnvRef("MQTT_ROOT_PASSWORD"),
        # Fixed by the answers, not .env: acl.conf grants exactly these names.
        "MQTT_HANDLER_USERNAME": answers.handler_username,
        "MQTT_HANDLER_PASSWORD": EnvRef("MQTT_HANDLER_PASSWORD"),
        "MQTT_PUBLISHER_USERNAME": answers.publisher_username,
        "MQTT_PUBLISHER_PASSWORD": EnvRef("MQTT_PUBLISHER_PASSWORD"),
    }
