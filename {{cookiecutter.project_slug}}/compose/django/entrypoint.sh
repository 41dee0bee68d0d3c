#!/bin/sh
# Entrypoint of every backend container: wait until PostgreSQL (and Redis) accept connections, then run the
# command. Waiting here turns a start-up race with the infra project into a short, logged delay instead of a crash.
#   WAIT_FOR_SERVICES  space-separated list out of "postgres redis" (default: both; empty: wait for nothing)
#   WAIT_TIMEOUT       seconds to wait for each service (default 60)
set -eu

WAIT_FOR_SERVICES="${WAIT_FOR_SERVICES-postgres redis}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-60}"
export WAIT_TIMEOUT

wait_for_postgres() {
    python - <<'PY'
import os
import sys
import time

import psycopg

deadline = time.monotonic() + int(os.environ["WAIT_TIMEOUT"])
target = f"{os.environ.get('POSTGRES_HOST', '127.0.0.1')}:{os.environ.get('POSTGRES_PORT', '5432')}"
while True:
    try:
        psycopg.connect(
            host=os.environ.get("POSTGRES_HOST", "127.0.0.1"),
            port=os.environ.get("POSTGRES_PORT", "5432"),
            dbname=os.environ.get("POSTGRES_DB", ""),
            user=os.environ.get("POSTGRES_USER", ""),
            password=os.environ.get("POSTGRES_PASSWORD", ""),
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as exc:
        if time.monotonic() >= deadline:
            sys.stderr.write(f"entrypoint: PostgreSQL at {target} is not reachable: {exc}\n")
            sys.exit(1)
        sys.stderr.write(f"entrypoint: waiting for PostgreSQL at {target}\n")
        time.sleep(1)
    else:
        sys.stderr.write(f"entrypoint: PostgreSQL at {target} is up\n")
        break
PY
}

wait_for_redis() {
    python - <<'PY'
import os
import sys
import time

import redis

deadline = time.monotonic() + int(os.environ["WAIT_TIMEOUT"])
target = f"{os.environ.get('REDIS_HOST', '127.0.0.1')}:{os.environ.get('REDIS_PORT', '6379')}"
client = redis.Redis(
    host=os.environ.get("REDIS_HOST", "127.0.0.1"),
    port=int(os.environ.get("REDIS_PORT", "6379")),
    password=os.environ.get("REDIS_PASSWORD") or None,
    socket_connect_timeout=3,
    socket_timeout=3,
)
while True:
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        # A wrong password never fixes itself: fail now with the reason.
        sys.stderr.write(f"entrypoint: Redis at {target} refused the password: {exc}\n")
        sys.exit(1)
    except redis.exceptions.RedisError as exc:
        if time.monotonic() >= deadline:
            sys.stderr.write(f"entrypoint: Redis at {target} is not reachable: {exc}\n")
            sys.exit(1)
        sys.stderr.write(f"entrypoint: waiting for Redis at {target}\n")
        time.sleep(1)
    else:
        sys.stderr.write(f"entrypoint: Redis at {target} is up\n")
        break
PY
}

for service in $WAIT_FOR_SERVICES; do
    case "$service" in
        postgres) wait_for_postgres ;;
        redis) wait_for_redis ;;
        *) echo "entrypoint: unknown service '$service' in WAIT_FOR_SERVICES (use postgres, redis)" >&2; exit 2 ;;
    esac
done

exec "$@"
