#!/bin/sh
# EMQX entrypoint: write the bootstrap file of the built-in-database authenticator from the environment, then
# hand over to the image's own entrypoint. EMQX imports the file on every boot and never overwrites an existing
# user, so the passwords in .env only take effect for users that do not exist yet (see README, "Security").
set -eu

BOOTSTRAP_FILE="${EMQX_BOOTSTRAP_USERS_FILE:-/opt/emqx/data/bootstrap_users.json}"
# The entrypoint of the emqx/emqx image (deploy/docker/Dockerfile in the EMQX repository).
IMAGE_ENTRYPOINT="${EMQX_IMAGE_ENTRYPOINT:-/usr/bin/docker-entrypoint.sh}"

fail() {
    echo "emqx entrypoint: $*" >&2
    exit 1
}

# Values are written into JSON unescaped, so only characters that need no escaping are accepted.
check_credential() {
    name="$1"
    value="$2"
    if [ -z "$value" ]; then
        fail "$name is empty; set it in .env (the generator fills it with a random value)"
    fi
    case "$value" in
        *[!A-Za-z0-9_-]*) fail "$name may only contain letters, digits, '_' and '-'" ;;
    esac
}

ROOT_USER="${MQTT_ROOT_USERNAME:-}"
ROOT_PASSWORD="${MQTT_ROOT_PASSWORD:-}"
HANDLER_USER="${MQTT_HANDLER_USERNAME:-}"
HANDLER_PASSWORD="${MQTT_HANDLER_PASSWORD:-}"
PUBLISHER_USER="${MQTT_PUBLISHER_USERNAME:-}"
PUBLISHER_PASSWORD="${MQTT_PUBLISHER_PASSWORD:-}"

check_credential MQTT_ROOT_USERNAME "$ROOT_USER"
check_credential MQTT_ROOT_PASSWORD "$ROOT_PASSWORD"
check_credential MQTT_HANDLER_USERNAME "$HANDLER_USER"
check_credential MQTT_HANDLER_PASSWORD "$HANDLER_PASSWORD"
check_credential MQTT_PUBLISHER_USERNAME "$PUBLISHER_USER"
check_credential MQTT_PUBLISHER_PASSWORD "$PUBLISHER_PASSWORD"
# The service users are fixed by the template answers (acl.conf grants them by name); the root user is not.
if [ "$ROOT_USER" = "$HANDLER_USER" ] || [ "$ROOT_USER" = "$PUBLISHER_USER" ]; then
    fail "MQTT_ROOT_USERNAME must differ from the service users $HANDLER_USER and $PUBLISHER_USER"
fi

# Only the root user is a superuser; the service users are fenced by acl.conf like everyone else.
umask 077
mkdir -p "$(dirname "$BOOTSTRAP_FILE")"
cat > "$BOOTSTRAP_FILE.tmp" <<JSON
[
  {"user_id": "$ROOT_USER", "password": "$ROOT_PASSWORD", "is_superuser": true},
  {"user_id": "$HANDLER_USER", "password": "$HANDLER_PASSWORD", "is_superuser": false},
  {"user_id": "$PUBLISHER_USER", "password": "$PUBLISHER_PASSWORD", "is_superuser": false}
]
JSON
mv "$BOOTSTRAP_FILE.tmp" "$BOOTSTRAP_FILE"
echo "emqx entrypoint: wrote bootstrap users $ROOT_USER (superuser), $HANDLER_USER, $PUBLISHER_USER" >&2

if [ "$#" -eq 0 ]; then
    set -- /opt/emqx/bin/emqx foreground
fi
exec "$IMAGE_ENTRYPOINT" "$@"
