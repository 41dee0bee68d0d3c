#!/bin/sh
# Celery beat: sends scheduled tasks; the schedule lives in the database (django-celery-beat, edited in the admin).
set -eu

# The schedule tables come from migrations that django-app applies when it starts; beat started on an
# unmigrated database would crash, so wait for them (bounded, so a broken database still surfaces).
timeout="${WAIT_TIMEOUT:-60}"
waited=0
until python manage.py migrate --check >/dev/null 2>&1; do
    if [ "$waited" -ge "$timeout" ]; then
        echo "start-celery-beat: migrations are still not applied after ${timeout}s; run: python manage.py migrate" >&2
        exit 1
    fi
    echo "start-celery-beat: waiting for migrations" >&2
    sleep 2
    waited=$((waited + 2))
done

exec celery -A config beat --loglevel="${CELERY_LOG_LEVEL:-INFO}" \
    --scheduler django_celery_beat.schedulers:DatabaseScheduler
