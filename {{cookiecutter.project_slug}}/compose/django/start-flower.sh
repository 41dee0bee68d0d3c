#!/bin/sh
# Flower, the Celery monitoring UI on port 5555, always behind basic auth.
set -eu

if [ -z "${FLOWER_USER:-}" ] || [ -z "${FLOWER_PASSWORD:-}" ]; then
    echo "start-flower: FLOWER_USER and FLOWER_PASSWORD must be set (see .env); refusing to start without auth" >&2
    exit 1
fi

# Flower reads FLOWER_BASIC_AUTH itself: the password stays out of the process list, unlike --basic-auth=.
FLOWER_BASIC_AUTH="$FLOWER_USER:$FLOWER_PASSWORD"
export FLOWER_BASIC_AUTH
exec celery -A config flower --address=0.0.0.0 --port=5555
