"""No device username, substituted into an ACL rule, can reach beyond that device's own topics."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from apps.devices.models import Device
from apps.devices.usernames import MAX_USERNAME_LENGTH, validate_device_username
from apps.mqtt_service import topology


@pytest.mark.parametrize(
    "username", ["device_001", "a", "0", "sensor-7", "x" * MAX_USERNAME_LENGTH, "a_b-c9"]
)
def test_valid_usernames(username):
    validate_device_username(username)


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("dev/1", "'/'"),
        ("dev+", "'+'"),
        ("dev#", "'#'"),
        ("$SYS", "'$'"),
        ("dev$1", "'$'"),
        ("dev\x001", "NUL"),
        ("dev 1", "whitespace"),
        ("dev\t1", "whitespace"),
        ("dev\n", "whitespace"),
        ("\u00a0dev", "whitespace"),
        ("Device1", "lower case"),
        ("DEV", "lower case"),
        ("_dev", "starts with"),
        ("-dev", "starts with"),
        ("dev.1", "only lower-case"),
        ("dév", "only lower-case"),
        ("dev*", "only lower-case"),
        ("", "required"),
        ("x" * (MAX_USERNAME_LENGTH + 1), "at most 64"),
        ("svc_handler", "reserved"),
        ("svc_publisher", "reserved"),
        ("admin", "reserved"),
    ],
)
def test_invalid_usernames_are_refused_with_a_clear_message(username, message):
    with pytest.raises(ValidationError) as excinfo:
        validate_device_username(username)
    assert message in " ".join(excinfo.value.messages)


def test_configured_broker_users_are_reserved(settings):
    settings.MQTT_ROOT_USERNAME = "root_user"
    for name in (topology.HANDLER_USERNAME, topology.PUBLISHER_USERNAME, "root_user"):
        with pytest.raises(ValidationError, match="reserved"):
            validate_device_username(name)


@pytest.mark.django_db
def test_model_validation_uses_the_username_rules():
    with pytest.raises(ValidationError) as excinfo:
        Device(username="dev/+", password_hash="x").full_clean()
    assert "username" in excinfo.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["dev/1", "Dev", "dev#", "admin", "dev\n", "dev+"])
def test_database_refuses_unsafe_usernames_written_around_the_orm(username):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO devices_device"
            " (username, name, password_hash, salt, is_active, created_at, updated_at)"
            " VALUES (%s, '', 'h', '', true, now(), now())",
            [username],
        )
