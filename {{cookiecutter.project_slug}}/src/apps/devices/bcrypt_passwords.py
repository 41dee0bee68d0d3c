"""bcrypt device password hashes, as EMQX 5.8 checks them: the `$2b$...` string itself, no separate salt.

Only a project generated with device_password_hash=bcrypt has this module and the bcrypt package.
"""

import bcrypt

from apps.devices.passwords import BCRYPT_MAX_BYTES


def bcrypt_hash(password: str, rounds: int) -> str:
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_BYTES:
        raise ValueError(f"bcrypt accepts at most {BCRYPT_MAX_BYTES} bytes of password.")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds=rounds)).decode("ascii")


def bcrypt_check(password: str, password_hash: str) -> bool:
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_BYTES or not password_hash.startswith("$2"):
        return False
    try:
        return bcrypt.checkpw(encoded, password_hash.encode("ascii"))
    except ValueError:  # a malformed stored hash is a failed check, not a crash
        return False
