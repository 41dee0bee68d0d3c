"""One test per rejection rule of the pre-gen hook: the bake fails, stderr has one line naming the answer
and what is allowed, and cookiecutter leaves no half-written project behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]

# (rule, answers, the answer the message must name)
REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("slug_with_dash", {"project_slug": "my-backend"}, "project_slug"),
    ("slug_starting_with_digit", {"project_slug": "1backend"}, "project_slug"),
    ("slug_upper_case", {"project_slug": "MyBackend"}, "project_slug"),
    ("slug_keyword", {"project_slug": "class"}, "project_slug"),
    ("slug_shadows_stdlib", {"project_slug": "json"}, "project_slug"),
    ("slug_shadows_project_package", {"project_slug": "config"}, "project_slug"),
    ("device_prefix_empty", {"device_topic_prefix": ""}, "device_topic_prefix"),
    ("device_prefix_with_slash", {"device_topic_prefix": "from/device"}, "device_topic_prefix"),
    ("device_prefix_with_plus", {"device_topic_prefix": "dev+"}, "device_topic_prefix"),
    ("device_prefix_with_hash", {"device_topic_prefix": "dev#"}, "device_topic_prefix"),
    ("device_prefix_with_space", {"device_topic_prefix": "from device"}, "device_topic_prefix"),
    ("device_prefix_with_nul", {"device_topic_prefix": "from\x00device"}, "device_topic_prefix"),
    ("device_prefix_starting_with_dollar", {"device_topic_prefix": "$SYS"}, "device_topic_prefix"),
    ("command_prefix_with_wildcard", {"command_topic_prefix": "to_device/+"}, "command_topic_prefix"),
    ("kind_with_wildcard", {"device_message_kinds": "status,ev#ent"}, "device_message_kinds"),
    ("kind_empty", {"device_message_kinds": "status,,event"}, "device_message_kinds"),
    ("kind_starting_with_dollar", {"device_message_kinds": "$status"}, "device_message_kinds"),
    ("duplicate_kinds", {"device_message_kinds": "status,event,status"}, "device_message_kinds"),
    ("kind_presence_is_reserved", {"device_message_kinds": "status,presence"}, "device_message_kinds"),
    ("kind_reply_is_reserved", {"device_message_kinds": "reply"}, "device_message_kinds"),
    ("group_with_space", {"shared_subscription_group": "my handlers"}, "shared_subscription_group"),
    ("group_with_slash", {"shared_subscription_group": "a/b"}, "shared_subscription_group"),
    (
        "equal_prefixes",
        {"device_topic_prefix": "mqtt", "command_topic_prefix": "mqtt"},
        "command_topic_prefix",
    ),
    ("ingest_qos_too_high", {"ingest_qos": 3}, "ingest_qos"),
    ("command_qos_negative", {"command_qos": -1}, "command_qos"),
    ("qos_not_a_number", {"ingest_qos": "one"}, "ingest_qos"),
    ("handler_replicas_zero", {"mqtt_handler_replicas": 0}, "mqtt_handler_replicas"),
    ("publisher_replicas_too_many", {"mqtt_publisher_replicas": 33}, "mqtt_publisher_replicas"),
    ("replicas_as_too_high_string", {"mqtt_handler_replicas": "40"}, "mqtt_handler_replicas"),
    ("emqx_nodes_even", {"emqx_nodes": 2}, "emqx_nodes"),
    ("emqx_nodes_zero", {"emqx_nodes": 0}, "emqx_nodes"),
    ("emqx_nodes_more_than_five", {"emqx_nodes": "7"}, "emqx_nodes"),
    ("emqx_nodes_not_a_number", {"emqx_nodes": "three"}, "emqx_nodes"),
    ("unknown_timezone", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("email_without_at", {"author_email": "you.example.com"}, "author_email"),
    ("emqx_not_5_8", {"emqx_version": "5.9.0"}, "emqx_version"),
    ("postgres_not_a_version", {"postgres_version": "latest"}, "postgres_version"),
    ("python_too_old", {"python_version": "3.10"}, "python_version"),
    ("redis_with_shell_characters", {"redis_version": "7; rm -rf /"}, "redis_version"),
    ("language_code_not_a_code", {"language_code": "English"}, "language_code"),
    # Text that no generated file can hold as plain text.
    ("name_with_newline", {"project_name": "IoT\nBackend", "project_slug": "iot"}, "project_name"),
    ("description_with_bidi_override", {"description": "safe \u202e txet"}, "description"),
    ("author_with_nul", {"author_name": "A\x00B"}, "author_name"),
    ("name_too_long", {"project_name": "x" * 101, "project_slug": "iot"}, "project_name"),
    ("slug_padded", {"project_slug": " iot_backend "}, "project_slug"),
    ("handler_user_upper_case", {"mqtt_handler_username": "Handler"}, "mqtt_handler_username"),
    ("publisher_user_with_slash", {"mqtt_publisher_username": "svc/pub"}, "mqtt_publisher_username"),
    ("service_users_equal", {"mqtt_publisher_username": "svc_handler"}, "mqtt_publisher_username"),
    ("service_user_is_root", {"mqtt_handler_username": "admin"}, "mqtt_handler_username"),
]


@pytest.mark.parametrize(
    ("answers", "answer_name"), [(a, n) for _, a, n in REJECTED], ids=[r for r, _, _ in REJECTED]
)
def test_bad_answer_is_rejected_with_one_line_and_nothing_left(
    answers: dict[str, Any],
    answer_name: str,
    tmp_path: Path,
    cookiecutter_config: Path,
    capfd: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException):
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context=answers,
            output_dir=str(out),
            config_file=str(cookiecutter_config),
        )
    stderr = capfd.readouterr().err
    messages = [line for line in stderr.splitlines() if line.startswith("Invalid answer ")]
    assert len(messages) == 1, stderr
    assert messages[0].startswith(f"Invalid answer {answer_name}="), messages[0]
    assert ": " in messages[0].split("=", 1)[1], "the line says what is allowed"
    assert list(out.iterdir()) == [], "cookiecutter left a half-written project"


def test_cookies_fixture_reports_the_failure(cookies) -> None:
    """The same rejection seen through pytest-cookies, as template users test it."""
    result = cookies.bake(extra_context={"mqtt_handler_replicas": 0})
    assert result.exit_code != 0
    assert isinstance(result.exception, FailedHookException)
    assert result.project_path is None
