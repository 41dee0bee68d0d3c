#!/bin/sh
# MQTT handler replica: shared subscription to the device topics, one handler per message kind.
set -eu
exec python manage.py run_mqtt_handler
