"""The OpenAPI schema is generated without a warning and describes every endpoint; Swagger UI is served with
its assets from this project, not from a CDN."""

import json
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

from api_fixtures import Fleet, client_for, make_fleet

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


# Every endpoint of the API (FLEET contract), in OpenAPI's notation.
ENDPOINTS = {
    "/api/devices/",
    "/api/devices/{username}/",
    "/api/devices/{username}/history/",
    "/api/devices/{username}/presence/",
    "/api/devices/{username}/commands/",
    "/api/commands/{id}/",
}


def test_schema_generates_without_warnings(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    # --fail-on-warn raises on any warning or error; --validate checks it against the OpenAPI spec.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target)
    )
    schema = json.loads(target.read_text())
    assert set(schema["paths"]) == ENDPOINTS
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            assert {"tokenAuth", "cookieAuth"} <= {k for s in operation["security"] for k in s}
            assert {"401", "404"} <= set(operation["responses"]), (
                f"{method.upper()} {path}: errors undocumented"
            )


def test_schema_and_docs_are_served(fleet: Fleet) -> None:
    client = client_for(fleet.alice)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/devices/{username}/history/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "//cdn" not in page and "unpkg" not in page
    # ... and is one of the project's static files (collectstatic copies it, WhiteNoise serves it).
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
