"""The handler's batch statements: parameters bound by the server (binary arrays), prepared once per
connection unless POSTGRES_PREPARE_BATCH_STATEMENTS is off (a pooler that cannot keep them)."""

from typing import Any

import pytest
from django.db import IntegrityError, connection

from apps.devices.models import Device
from apps.mqtt_service.bulk_sql import batch_cursor
from mqtt_helpers import unique

pytestmark = pytest.mark.django_db


def prepared_statements_like(text: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{text}%"])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("prepare", [True, False])
def test_statements_are_prepared_unless_switched_off(settings: Any, prepare: bool) -> None:
    settings.POSTGRES_PREPARE_BATCH_STATEMENTS = prepare
    marker = f"batch_probe_{prepare}".lower()
    query = f"SELECT count(*) AS {marker} FROM unnest(%b::bigint[], %b::text[])"  # noqa: S608 - fixed text
    with batch_cursor() as cursor:
        cursor.execute(query, [[1, 2], ["a", None]])
        assert cursor.fetchall() == [(2,)]
    assert prepared_statements_like(marker) == (1 if prepare else 0)


def test_database_errors_surface_as_djangos() -> None:
    device = Device.objects.create(username=unique("check"))
    # The table's check constraint refuses this username: Django's IntegrityError, as from any Django cursor.
    with pytest.raises(IntegrityError), batch_cursor() as cursor:
        cursor.execute("UPDATE devices_device SET username = %b WHERE id = %b", ["Not Allowed", device.pk])
