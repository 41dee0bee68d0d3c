"""/health/ reports each dependency and turns 503 when one is down."""

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
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "broker"}
    assert all(check["status"] == "ok" for check in body["checks"].values())
    assert response["Cache-Control"].startswith("max-age=0")


def test_broker_down_gives_503(client, settings, closed_port):
    settings.MQTT = {**settings.MQTT, "port": closed_port}
    response = client.get(reverse("main:health"))
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "down"
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


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


def test_index_page_links_admin_and_health(client, admin_client):
    anonymous = client.get("/").content.decode()
    assert "/admin/" in anonymous
    assert "/health/" in anonymous
    assert "new WebSocket" not in anonymous
    signed_in = admin_client.get("/").content.decode()
    assert "/ws/connect/" in signed_in
