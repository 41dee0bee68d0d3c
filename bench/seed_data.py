"""Creates the benchmark's data in the baked project's database and prints it as one JSON line.

    seed_data.py [--devices 8] [--fleet 10000 --fleet-topics PATH] [--owners 1000 --owners-file PATH]

Run with the project's settings (PYTHONPATH=<project>/src): a staff user who owns the devices, so each
device message is pushed to two groups (the owner's and staff), and a session for that user stored exactly
as `django.contrib.auth.login` stores it, so the WebSocket client connects with a real session cookie.
`--fleet N` also registers N more devices of that user (bulk inserts, no password: the benchmark's broker
does not authenticate) and writes one topic per line to PATH: every device's `event` topic, then every
device's topic of a second kind, so a feed that cycles through the file spreads over all of them.
`--owners N` also creates N ordinary users, each with a session and `--devices-per-owner` devices of their
own, and writes to PATH (JSON) each owner's cookie and device usernames, and the topics of all their devices
in the same order as `--fleet-topics` (every device's `event` topic, then its second kind's).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import django

BATCH = 2000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=8, help="devices whose topics are printed")
    parser.add_argument("--fleet", type=int, default=0, help="more devices, listed in --fleet-topics")
    parser.add_argument("--fleet-topics", type=Path, help="where to write the fleet's topics")
    parser.add_argument("--owners", type=int, default=0, help="users owning devices, listed in --owners-file")
    parser.add_argument("--devices-per-owner", type=int, default=10)
    parser.add_argument("--owners-file", type=Path, help="where to write the owners' cookies and topics")
    args = parser.parse_args()
    if args.fleet and args.fleet_topics is None:
        parser.error("--fleet needs --fleet-topics")
    if args.owners and args.owners_file is None:
        parser.error("--owners needs --owners-file")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from apps.devices.models import Device
    from apps.mqtt_service.topics import DEFAULT_SCHEME
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    def cookie_of(user: Any) -> str:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
    cookie = cookie_of(user)
    usernames = [f"benchdev{i}" for i in range(args.devices)]
    fleet = [f"benchfleet{i}" for i in range(args.fleet)]
    Device.objects.bulk_create(
        (Device(username=name, name=name, owner=user) for name in usernames + fleet), batch_size=BATCH
    )
    kinds = list(DEFAULT_SCHEME.kinds)
    if fleet:
        second = next((kind for kind in kinds if kind != "event"), "event")
        lines = [DEFAULT_SCHEME.device_topic(name, kind) for kind in ("event", second) for name in fleet]
        args.fleet_topics.write_text("\n".join(lines) + "\n")
    if args.owners:
        second = next((kind for kind in kinds if kind != "event"), "event")
        users = get_user_model().objects.bulk_create(
            get_user_model()(username=f"benchowner{i}", password="!") for i in range(args.owners)
        )
        owned = {
            owner.pk: [f"benchown{index}x{n}" for n in range(args.devices_per_owner)]
            for index, owner in enumerate(users)
        }
        Device.objects.bulk_create(
            (Device(username=name, name=name, owner=owner) for owner in users for name in owned[owner.pk]),
            batch_size=BATCH,
        )
        names = [name for owner in users for name in owned[owner.pk]]
        args.owners_file.write_text(
            json.dumps(
                {
                    "owners": [{"cookie": cookie_of(owner), "devices": owned[owner.pk]} for owner in users],
                    "topics": [
                        DEFAULT_SCHEME.device_topic(name, kind)
                        for kind in ("event", second)
                        for name in names
                    ],
                }
            )
        )
    print(
        json.dumps(
            {
                "cookie": cookie,
                "device_topics": {
                    kind: [DEFAULT_SCHEME.device_topic(name, kind) for name in usernames] for kind in kinds
                },
                "command_topic": DEFAULT_SCHEME.command_topic(usernames[0]),
                "fleet_devices": len(fleet),
            }
        )
    )


if __name__ == "__main__":
    main()
