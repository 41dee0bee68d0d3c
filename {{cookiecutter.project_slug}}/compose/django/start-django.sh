#!/bin/sh
# django-app: apply migrations, collect static files, then serve HTTP and WebSocket (ASGI) on port 8000.
# DJANGO_DEBUG true/1/yes: Django's development server; otherwise gunicorn with uvicorn workers (the
# uvicorn-worker package; uvicorn.workers is deprecated).
set -eu

python manage.py migrate --noinput
python manage.py collectstatic --noinput

debug="$(printf '%s' "${DJANGO_DEBUG:-False}" | tr '[:upper:]' '[:lower:]')"
case "$debug" in
    true | 1 | yes | on)
        exec python manage.py runserver 0.0.0.0:8000
        ;;
esac

# --no-control-socket: the runtime control socket is not used, and the app user's home is read-only.
exec gunicorn config.asgi:application \
    --worker-class uvicorn_worker.UvicornWorker \
    --bind 0.0.0.0:8000 \
    --workers "${GUNICORN_WORKERS:-2}" \
    --timeout "${GUNICORN_TIMEOUT:-60}" \
    --graceful-timeout "${GUNICORN_GRACEFUL_TIMEOUT:-30}" \
    --access-logfile - \
    --no-control-socket
