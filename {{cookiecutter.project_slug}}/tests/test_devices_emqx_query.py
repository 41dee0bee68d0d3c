"""EMQX's own query, run on the real database against a device created through the admin form."""

import pytest
from django.db import connection
from django.urls import reverse

from apps.devices.passwords import verify_password

# Exactly what compose/emqx writes into the PostgreSQL authenticator, with ${username} as a parameter.
EMQX_QUERY = (
    "SELECT password_hash, salt, false AS is_superuser FROM devices_device "
    "WHERE username = %s AND is_active LIMIT 1"
)
PASSWORD = "emqx-checks-this-password"

pytestmark = pytest.mark.django_db


def emqx_lookup(username):
    with connection.cursor() as cursor:
        cursor.execute(EMQX_QUERY, [username])
        return cursor.fetchone()


@pytest.fixture
def device_via_admin(admin_client):
    response = admin_client.post(
        reverse("admin:devices_device_add"),
        {"username": "gate-7", "is_active": "on", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302, response.content
    return "gate-7"


def test_emqx_query_returns_a_hash_that_verifies(device_via_admin):
    row = emqx_lookup(device_via_admin)
    assert row is not None
    password_hash, salt, is_superuser = row
    assert salt is not None  # a NULL salt makes EMQX skip the authenticator
    assert is_superuser is False
    assert verify_password(PASSWORD, password_hash, salt)
    assert not verify_password("wrong-password-of-same-size", password_hash, salt)


def test_inactive_device_is_not_found(device_via_admin, admin_client):
    connection.cursor().execute(
        "UPDATE devices_device SET is_active = false WHERE username = %s", [device_via_admin]
    )
    assert emqx_lookup(device_via_admin) is None


def test_unknown_device_is_not_found(device_via_admin):
    assert emqx_lookup("gate-8") is None
