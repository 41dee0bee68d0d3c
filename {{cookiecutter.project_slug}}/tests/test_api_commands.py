"""POST /api/devices/<username>/commands/: the command is stored, queued for the publisher with the device
contract's message, and answered 201 in the one command shape; bad input is a 400 with the reason."""

import json
import socket
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from api_fixtures import Fleet, client_for, csrf_token, make_fleet
from apps.commands import services
from apps.commands.models import Command, CommandState
from apps.commands.representation import command_json
from apps.mqtt_service.publish_queue import PublishQueue
from apps.mqtt_service.topics import DEFAULT_SCHEME
from mqtt_helpers import publish_queue  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db
# For the tests that follow a command onto the queue: send_command queues it once its row is committed
# (transaction.on_commit), so these commit for real, as a request does.
committing = pytest.mark.django_db(transaction=True)

URL = "/api/devices/alice-meter/commands/"


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


@pytest.fixture
def queue(publish_queue: PublishQueue, monkeypatch: pytest.MonkeyPatch) -> Iterator[PublishQueue]:  # noqa: F811
    """send_command queues on a stream of this test only."""
    monkeypatch.setattr(services, "command_sender", services.CommandSender(publish_queue))
    yield publish_queue


def queued_messages(queue: PublishQueue) -> list[dict[bytes, bytes]]:
    client = redis.Redis.from_url(queue.url)
    try:
        return [fields for _id, fields in client.xrange(queue.stream)]
    finally:
        client.close()


def post(client: APIClient, body: object, url: str = URL, **headers: str):
    return client.post(url, body, format="json", HTTP_X_CSRFTOKEN=csrf_token(client), **headers)


@committing
def test_a_command_is_stored_queued_and_answered(fleet: Fleet, queue: PublishQueue) -> None:
    response = post(client_for(fleet.alice), {"name": "set_relay", "params": {"relay": 2}, "timeout": 45})
    assert response.status_code == 201, response.content
    command = Command.objects.get()
    assert response.json() == command_json(command)
    assert response["Location"] == f"/api/commands/{command.id}/"
    assert (command.name, command.params, command.timeout, command.state) == (
        "set_relay",
        {"relay": 2},
        45,
        CommandState.QUEUED,
    )
    assert command.created_by == fleet.alice
    (message,) = queued_messages(queue)
    assert message[b"topic"].decode() == DEFAULT_SCHEME.command_topic("alice-meter")
    body = json.loads(message[b"payload"])
    assert body == {
        "id": str(command.id),
        "name": "set_relay",
        "params": {"relay": 2},
        "expires_at": body["expires_at"],
    }
    assert client_for(fleet.alice).get(f"/api/commands/{command.id}/").json()["state"] == "queued"


def test_defaults_params_and_timeout(fleet: Fleet, queue: PublishQueue) -> None:
    response = post(client_for(fleet.alice), {"name": "reboot"})
    assert response.status_code == 201, response.content
    assert response.json()["params"] == {}
    assert response.json()["timeout"] == settings.COMMAND_DEFAULT_TIMEOUT


def test_a_script_sends_with_its_token_and_no_csrf(fleet: Fleet, queue: PublishQueue) -> None:
    token = Token.objects.create(user=fleet.alice)
    client = APIClient(enforce_csrf_checks=True)
    response = client.post(URL, {"name": "reboot"}, format="json", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 201, response.content


def test_a_session_without_csrf_token_sends_nothing(fleet: Fleet, queue: PublishQueue) -> None:
    response = client_for(fleet.alice).post(URL, {"name": "reboot"}, format="json")
    assert response.status_code == 403
    assert not Command.objects.exists()


def test_another_users_device_is_not_found_and_gets_nothing(fleet: Fleet, queue: PublishQueue) -> None:
    response = post(client_for(fleet.bob), {"name": "reboot"})
    assert response.status_code == 404
    assert not Command.objects.exists()
    assert post(client_for(fleet.staff), {"name": "reboot"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "This field is required."),
        ({"name": ""}, "name", "This field may not be blank."),
        ({"name": "x" * (services.MAX_NAME_LENGTH + 1)}, "name", "Ensure this field has no more than"),
        (
            {"name": "reboot", "params": [1, 2]},
            "params",
            'Expected a dictionary of items but got type "list".',
        ),
        ({"name": "reboot", "params": "on"}, "params", "Expected a dictionary of items"),
        ({"name": "reboot", "timeout": -5}, "timeout", "Ensure this value is greater than or equal to 1."),
        ({"name": "reboot", "timeout": 0}, "timeout", "greater than or equal to 1"),
        ({"name": "reboot", "timeout": 10**9}, "timeout", "less than or equal to"),
        ({"name": "reboot", "timeout": "soon"}, "timeout", "A valid integer is required."),
        ({"name": "reboot", "timeout": 1.5}, "timeout", "A valid integer is required."),
    ],
)
def test_bad_command_is_a_400_with_its_reason(
    fleet: Fleet, queue: PublishQueue, body: dict, field: str, message: str
) -> None:
    response = post(client_for(fleet.alice), body)
    assert response.status_code == 400, response.content
    (reason,) = response.json()[field]
    assert message in reason
    assert not Command.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "bad\nname"}, "control characters"),
        ({"name": "reboot", "params": {"text": "nul \u0000 byte"}}, "command params refused"),
    ],
)
def test_what_the_service_refuses_is_a_400_with_its_reason(
    fleet: Fleet, queue: PublishQueue, body: dict, message: str
) -> None:
    response = post(client_for(fleet.alice), body)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert not Command.objects.exists()


def test_an_inactive_device_gets_no_command(fleet: Fleet, queue: PublishQueue) -> None:
    fleet.alice_device.is_active = False
    fleet.alice_device.save()
    response = post(client_for(fleet.alice), {"name": "reboot"})
    assert response.status_code == 400
    assert "inactive" in response.json()["detail"]


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ("name=reboot", "text/plain")],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    fleet: Fleet, queue: PublishQueue, raw: str, content_type: str
) -> None:
    client = client_for(fleet.alice)
    response = client.post(URL, raw, content_type=content_type, HTTP_X_CSRFTOKEN=csrf_token(client))
    assert response.status_code in (400, 415), response.content
    assert response.json()
    assert not Command.objects.exists()


@committing
def test_redis_down_is_a_503_and_the_command_is_kept_as_expired(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = PublishQueue(f"redis://127.0.0.1:{port}/0", stream="unreachable")
    monkeypatch.setattr(services, "command_sender", services.CommandSender(dead))
    response = post(client_for(fleet.alice), {"name": "reboot"})
    assert response.status_code == 503
    assert "could not be queued" in response.json()["detail"]
    assert Command.objects.get().state == CommandState.EXPIRED
