"""/health/ reports each dependency and turns 503 when one is down; only staff see why."""

import json
import logging
import socket

import pytest
from django.db import OperationalError
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_port():
    """A local port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_services_up(client):
    response = client.get(reverse("main:health"))
    body = response.json()
    assert response.status_code == 200, body
    assert body == {
        "status": "ok",
        "checks": {name: {"status": "ok"} for name in ("database", "redis", "broker")},
    }
    assert response["Cache-Control"].startswith("max-age=0")


def test_broker_down_gives_503_and_anonymous_callers_only_the_states(client, settings, closed_port, caplog):
    settings.MQTT = {**settings.MQTT, "host": "127.0.0.1", "port": closed_port}
    with caplog.at_level(logging.WARNING, logger="apps.main.health"):
        response = client.get(reverse("main:health"))
    body = response.json()
    assert response.status_code == 503
    assert body == {
        "status": "degraded",
        "checks": {"database": {"status": "ok"}, "redis": {"status": "ok"}, "broker": {"status": "down"}},
    }
    text = json.dumps(body)
    assert str(closed_port) not in text
    assert "127.0.0.1" not in text
    assert "Error" not in text
    # The reason is in the log, for the operator.
    assert any(
        "broker" in record.getMessage() and "ConnectionRefusedError" in record.getMessage()
        for record in caplog.records
    )


def test_staff_see_the_details_of_each_check(admin_client, settings, closed_port):
    settings.MQTT = {**settings.MQTT, "port": closed_port}
    body = admin_client.get(reverse("main:health")).json()
    assert body["checks"]["broker"]["status"] == "down"
    assert "ConnectionRefusedError" in body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["latency_ms"] >= 0


def test_signed_in_users_who_are_not_staff_get_only_the_states(
    client, django_user_model, settings, closed_port
):
    settings.MQTT = {**settings.MQTT, "port": closed_port}
    client.force_login(django_user_model.objects.create_user("plain-user", password="x" * 20))
    assert client.get(reverse("main:health")).json()["checks"]["broker"] == {"status": "down"}


def test_redis_down_gives_503(client, settings, closed_port):
    settings.REDIS_CACHE_URL = f"redis://127.0.0.1:{closed_port}/0"
    response = client.get(reverse("main:health"))
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "down"
    assert response.json()["checks"]["broker"]["status"] == "ok"


def test_database_down_gives_503(client, monkeypatch):
    from apps.main import health

    def broken_cursor():
        raise OperationalError("connection refused")  # what Django raises when Postgres is unreachable

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = client.get(reverse("main:health"))
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "down"
