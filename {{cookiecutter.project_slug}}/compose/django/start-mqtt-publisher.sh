#!/bin/sh
# MQTT publisher replica: takes queued commands from Redis and publishes them to the broker.
set -eu
exec python manage.py run_mqtt_publisher
