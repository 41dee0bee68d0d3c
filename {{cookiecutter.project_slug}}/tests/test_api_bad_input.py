"""Bad query parameters are answered 400 with the parameter and a readable reason, never a 500 or a silently
ignored filter."""

import base64

import pytest

from api_fixtures import Fleet, client_for, csrf_token, make_fleet

pytestmark = pytest.mark.django_db

HISTORY = "/api/devices/alice-meter/history/"


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


def forged_cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    ("url", "params", "field", "message"),
    [
        (HISTORY, {"since": "yesterday"}, "since", "Enter a valid date/time."),
        (HISTORY, {"until": "2026-02-30T00:00:00Z"}, "until", "Enter a valid date/time."),
        (HISTORY, {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "until", "later than"),
        (HISTORY, {"kind": "no-such-kind"}, "kind", "Select a valid choice."),
        (HISTORY, {"cursor": "not a cursor"}, "cursor", "Invalid cursor"),
        (HISTORY, {"cursor": forged_cursor("p=not-a-time")}, "cursor", "Invalid cursor"),
        (HISTORY, {"cursor": forged_cursor("o=-5")}, "cursor", "Invalid cursor"),
        (
            "/api/devices/alice-meter/presence/",
            {"cursor": forged_cursor("p=2026-99-99")},
            "cursor",
            "Invalid cursor",
        ),
        ("/api/devices/alice-meter/commands/", {"state": "done"}, "state", "Select a valid choice."),
        ("/api/devices/", {"online": "maybe"}, "online", "Select a valid choice."),
        ("/api/devices/", {"search": "x" * 201}, "search", "at most 200 characters"),
        ("/api/devices/", {"search": "a\x00b"}, "search", "Null characters are not allowed."),
    ],
)
def test_bad_parameter_is_a_400_with_its_reason(
    fleet: Fleet, url: str, params: dict, field: str, message: str
) -> None:
    response = client_for(fleet.alice).get(url, params)
    assert response.status_code == 400, response.content
    (reason,) = response.json()[field]
    assert message in reason


def test_a_page_past_the_end_is_a_404_with_its_reason(fleet: Fleet) -> None:
    response = client_for(fleet.alice).get("/api/devices/", {"page": 99})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


def test_a_command_id_that_is_not_a_uuid_is_not_found(fleet: Fleet) -> None:
    assert client_for(fleet.alice).get("/api/commands/not-a-uuid/").status_code == 404


def test_unsupported_method_is_a_405(fleet: Fleet) -> None:
    client = client_for(fleet.alice)
    response = client.delete("/api/devices/alice-meter/", HTTP_X_CSRFTOKEN=csrf_token(client))
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
