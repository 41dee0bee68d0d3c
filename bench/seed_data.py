"""Creates the benchmark's data in the baked project's database and prints it as one JSON line.

Run with the project's settings (PYTHONPATH=<project>/src): a staff user who owns the devices, so each
device message is pushed to two groups (the owner's and staff), and a session for that user stored exactly
as `django.contrib.auth.login` stores it, so the WebSocket client connects with a real session cookie.
"""

from __future__ import annotations

import json
import os
import sys

import django


def main(device_count: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from apps.devices.models import Device
    from apps.mqtt_service.topics import DEFAULT_SCHEME
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    usernames = [f"benchdev{i}" for i in range(device_count)]
    Device.objects.bulk_create(Device(username=name, name=name, owner=user) for name in usernames)
    kinds = list(DEFAULT_SCHEME.kinds)
    print(
        json.dumps(
            {
                "cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}",
                "device_topics": {
                    kind: [DEFAULT_SCHEME.device_topic(name, kind) for name in usernames] for kind in kinds
                },
                "command_topic": DEFAULT_SCHEME.command_topic(usernames[0]),
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
