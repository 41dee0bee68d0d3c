"""The normalized answers model (hooks/answers.py) on its own: what it accepts and how it normalizes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "hooks"))
sys.dont_write_bytecode = True

from answers import AnswerError, build_answers  # noqa: E402


def defaults(**overrides: object) -> dict[str, object]:
    context = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    context.pop("__prompts__")
    context["project_slug"] = "iot_backend"
    context["device_password_hash"] = context["device_password_hash"][0]
    context.update(overrides)
    return context


def test_defaults_give_the_documented_model() -> None:
    answers = build_answers(defaults())
    assert answers.project_slug == "iot_backend"
    assert answers.device_message_kinds == ("status", "event")
    assert (answers.ingest_qos, answers.command_qos) == (1, 1)
    assert (answers.mqtt_handler_replicas, answers.mqtt_publisher_replicas) == (1, 1)
    assert answers.emqx_nodes == 1
    assert answers.password_hash.algorithm == "sha256"
    assert answers.password_hash.salt_position == "suffix"
    assert (answers.password_hash.pbkdf2_mac, answers.password_hash.pbkdf2_iterations) == ("sha256", 10000)
    assert (answers.password_hash.pbkdf2_dk_length, answers.password_hash.bcrypt_rounds) == (32, 10)
    assert (answers.handler_username, answers.publisher_username) == ("svc_handler", "svc_publisher")
    assert answers.use_flower is True and answers.expose_infra_ports is False
    assert answers.images.emqx.startswith("5.8.")


@pytest.mark.parametrize(
    ("overrides", "attribute", "value"),
    [
        ({"ingest_qos": "0"}, "ingest_qos", 0),
        ({"command_qos": 2}, "command_qos", 2),
        ({"mqtt_handler_replicas": "32"}, "mqtt_handler_replicas", 32),
        ({"emqx_nodes": "5"}, "emqx_nodes", 5),
        ({"emqx_nodes": 3}, "emqx_nodes", 3),
        ({"device_message_kinds": " a , b "}, "device_message_kinds", ("a", "b")),
        ({"use_flower": "no"}, "use_flower", False),
        ({"expose_infra_ports": "yes"}, "expose_infra_ports", True),
    ],
)
def test_answers_are_normalized(overrides: dict[str, object], attribute: str, value: object) -> None:
    assert getattr(build_answers(defaults(**overrides)), attribute) == value


def test_model_is_frozen() -> None:
    answers = build_answers(defaults())
    with pytest.raises(AttributeError):
        answers.ingest_qos = 2  # type: ignore[misc]


def test_error_is_one_line_naming_the_answer() -> None:
    with pytest.raises(AnswerError) as caught:
        build_answers(defaults(use_flower="maybe"))
    assert caught.value.answer == "use_flower"
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("Invalid answer use_flower='maybe': ")
