"""What the backend's services need wherever they run (compose or Kubernetes): where PostgreSQL, Redis and
the broker are, how each service starts, and how long an MQTT service gets to drain when stopped.

PostgreSQL and Redis are reached by the service names `postgres` and `redis` on both platforms: compose
runs them under those names, a Kubernetes namespace has Services of those names (in-cluster in the dev
overlay, ExternalName Services pointing at managed servers in prod). So EMQX's device authenticator and
the Django settings hold the same addresses whatever runs them.
"""

from __future__ import annotations

POSTGRES_HOST = "postgres"
POSTGRES_PORT = 5432
REDIS_HOST = "redis"
REDIS_PORT = 6379
MQTT_PORT = 1883
EMQX_DASHBOARD_PORT = 18083
DJANGO_PORT = 8000
FLOWER_PORT = 5555

# Start scripts of the app image (compose/django/ in the generated project).
APP_SCRIPTS = "/app/compose/django"
# Time an MQTT service gets after SIGTERM to finish the messages it holds before it is killed.
MQTT_STOP_GRACE_SECONDS = 30


def start_script(name: str) -> str:
    """Path of a start script inside the app image, e.g. start_script("django")."""
    return f"{APP_SCRIPTS}/start-{name}.sh"


def backend_environment(broker_host: str) -> dict[str, str]:
    """The addresses every backend container gets, overriding the native ones in .env."""
    return {
        "POSTGRES_HOST": POSTGRES_HOST,
        "POSTGRES_PORT": str(POSTGRES_PORT),
        "REDIS_HOST": REDIS_HOST,
        "REDIS_PORT": str(REDIS_PORT),
        "MQTT_BROKER_HOST": broker_host,
        "MQTT_BROKER_PORT": str(MQTT_PORT),
    }
