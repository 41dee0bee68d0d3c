"""A database connection of a test's own, beside Django's: another session, as another process would be."""

import psycopg
from django.db import connection


def own_connection() -> psycopg.Connection:
    """A new autocommit connection to the test database (use it as a context manager)."""
    database = connection.settings_dict
    return psycopg.connect(
        host=database["HOST"],
        port=database["PORT"],
        user=database["USER"],
        password=database["PASSWORD"],
        dbname=database["NAME"],
        autocommit=True,
    )
