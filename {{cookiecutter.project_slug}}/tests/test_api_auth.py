"""Token auth for scripts, session auth for the browser with CSRF enforced on unsafe methods."""

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from api_fixtures import Fleet, client_for, csrf_token, make_fleet

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


def test_a_token_authenticates_a_script(fleet: Fleet) -> None:
    token = Token.objects.create(user=fleet.alice)
    client = APIClient()
    response = client.get("/api/devices/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert [d["username"] for d in response.json()["results"]] == ["alice-meter"]


def test_a_token_needs_no_csrf_token(fleet: Fleet) -> None:
    token = Token.objects.create(user=fleet.alice)
    client = APIClient(enforce_csrf_checks=True)
    # Past authentication (and CSRF) the method is refused: proof that nothing before it was.
    response = client.post("/api/devices/", {}, format="json", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 405


@pytest.mark.parametrize("header", ["Token not-a-real-key", "Token", "Token a b"])
def test_a_bad_token_is_a_401_with_its_reason(fleet: Fleet, header: str) -> None:
    response = APIClient().get("/api/devices/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["detail"].startswith("Invalid token")


def test_a_token_of_an_inactive_user_is_refused(fleet: Fleet) -> None:
    token = Token.objects.create(user=fleet.alice)
    fleet.alice.is_active = False
    fleet.alice.save()
    response = APIClient().get("/api/devices/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 401


def test_the_management_command_creates_a_working_token(fleet: Fleet, capsys: pytest.CaptureFixture) -> None:
    call_command("drf_create_token", "alice")
    key = Token.objects.get(user=fleet.alice).key
    assert key in capsys.readouterr().out
    assert APIClient().get("/api/devices/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


def test_a_session_reads_without_csrf_token(fleet: Fleet) -> None:
    assert client_for(fleet.alice).get("/api/devices/").status_code == 200


def test_a_session_must_send_the_csrf_token_on_unsafe_methods(fleet: Fleet) -> None:
    client = client_for(fleet.alice)
    refused = client.post("/api/devices/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "CSRF Failed: CSRF cookie not set."}
    token = csrf_token(client)
    wrong = client.post("/api/devices/", {}, format="json", HTTP_X_CSRFTOKEN="x" * 32)
    assert wrong.status_code == 403
    assert "CSRF Failed" in wrong.json()["detail"]
    # With the token the request gets past the CSRF check (this URL takes no POST).
    assert client.post("/api/devices/", {}, format="json", HTTP_X_CSRFTOKEN=token).status_code == 405
