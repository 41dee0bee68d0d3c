"""Device password hashes in exactly the formats EMQX 5.8 checks against PostgreSQL.

The algorithm and its parameters come from `password_scheme` (written from the template answers), the same
source the EMQX authentication config is derived from, so Django and the broker always agree.
- sha256: lower-case hex of sha256(password + salt): salt as suffix, as raw UTF-8 bytes (never hex-decoded)
- pbkdf2: hex of pbkdf2_hmac(mac, password, salt bytes, iterations, dk_length)
- bcrypt: the `$2b$...` string itself; EMQX ignores the salt column, which stays "" (never NULL)
"""

import hashlib
import hmac
import secrets
from types import ModuleType

from django.core.exceptions import ValidationError
from zxcvbn import zxcvbn

from apps.devices import password_scheme as scheme

MIN_PASSWORD_LENGTH = 16
MAX_PASSWORD_LENGTH = 128  # generated ones have 32; the strength estimate's cost grows with the length
# A typed password must need at least 10^12 guesses by zxcvbn's estimate (it models repeats, sequences,
# keyboard walks, dates and dictionary words with substitutions). Every such pattern of 16+ characters
# estimates far below this (16 identical characters or spaces: about 10^2), while 16 random characters, even
# hex, estimate above it. Length alone says nothing: "aaaaaaaaaaaaaaaa" is 16 characters.
MIN_GUESSES_LOG10 = 12
BCRYPT_MAX_BYTES = 72  # bcrypt ignores (bcrypt>=5 refuses) anything longer
SALT_BYTES = 16
SIMPLE_ALGORITHMS = ("md5", "sha", "sha256", "sha512")
_HASHLIB_NAMES = {
    "md5": "md5",
    "sha": "sha1",
    "sha224": "sha224",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
}


def salted_digest(password: str, salt: str, algorithm: str = "sha256", salt_position: str = "suffix") -> str:
    """EMQX's simple hashes: hex of salt+password (prefix), password+salt (suffix) or password (disable)."""
    if algorithm not in SIMPLE_ALGORITHMS:
        raise ValueError(
            f"Unsupported simple hash algorithm {algorithm!r}; expected one of {SIMPLE_ALGORITHMS}."
        )
    if salt_position == "prefix":
        material = salt + password
    elif salt_position == "suffix":
        material = password + salt
    elif salt_position == "disable":
        material = password
    else:
        raise ValueError(f"Unsupported salt position {salt_position!r}; expected prefix, suffix or disable.")
    return hashlib.new(_HASHLIB_NAMES[algorithm], material.encode("utf-8")).hexdigest()


def pbkdf2_digest(password: str, salt: str, mac: str, iterations: int, dk_length: int | None) -> str:
    """EMQX's pbkdf2: hex of PBKDF2-HMAC(mac) over the password with the salt's raw UTF-8 bytes."""
    return hashlib.pbkdf2_hmac(
        _HASHLIB_NAMES[mac], password.encode("utf-8"), salt.encode("utf-8"), iterations, dk_length
    ).hex()


def _bcrypt() -> ModuleType:
    """The bcrypt support, imported on first use: only projects generated for bcrypt have it (and bcrypt)."""
    from apps.devices import bcrypt_passwords

    return bcrypt_passwords


def new_salt() -> str:
    """A random hex salt: ASCII, so its UTF-8 bytes are what EMQX hashes."""
    return secrets.token_hex(SALT_BYTES)


def _configured_digest(raw: str, salt: str) -> str:
    if scheme.ALGORITHM == "sha256":
        return salted_digest(raw, salt, "sha256", scheme.SALT_POSITION)
    if scheme.ALGORITHM == "pbkdf2":
        return pbkdf2_digest(raw, salt, scheme.PBKDF2_MAC, scheme.PBKDF2_ITERATIONS, scheme.PBKDF2_DK_LENGTH)
    raise ValueError(f"Unknown device password algorithm {scheme.ALGORITHM!r}.")


def hash_password(raw: str) -> tuple[str, str]:
    """Hash a device password with the configured scheme; returns (password_hash, salt)."""
    if scheme.ALGORITHM == "bcrypt":
        return _bcrypt().bcrypt_hash(raw, scheme.BCRYPT_ROUNDS), ""
    salt = new_salt()
    return _configured_digest(raw, salt), salt


def verify_password(raw: str, password_hash: str, salt: str) -> bool:
    """Check a password the way EMQX does, comparing in constant time."""
    if not password_hash:
        return False
    if scheme.ALGORITHM == "bcrypt":
        return _bcrypt().bcrypt_check(raw, password_hash)
    expected = _configured_digest(raw, salt or "")
    # EMQX compares hex case-insensitively.
    return hmac.compare_digest(expected.encode("ascii"), password_hash.lower().encode("ascii", "replace"))


def generate_device_password() -> str:
    """A fresh random password: 24 random bytes (192 bits), URL-safe, 32 characters."""
    return secrets.token_urlsafe(24)


def validate_device_password(raw: str, username: str = "") -> None:
    """Refuse a typed password that is too short, too long, or easy to guess (the device's username counts
    as a known word). Generated passwords always pass."""
    if len(raw) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            "A device password needs at least %(min)d characters (this one has %(length)d).",
            code="password_too_short",
            params={"min": MIN_PASSWORD_LENGTH, "length": len(raw)},
        )
    if len(raw) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            "A device password can be at most %(max)d characters long.",
            code="password_too_long",
            params={"max": MAX_PASSWORD_LENGTH},
        )
    if scheme.ALGORITHM == "bcrypt" and len(raw.encode("utf-8")) > BCRYPT_MAX_BYTES:
        raise ValidationError(
            "With bcrypt a device password can be at most %(max)d bytes long.",
            code="password_too_long",
            params={"max": BCRYPT_MAX_BYTES},
        )
    estimate = zxcvbn(raw, user_inputs=[username] if username else [], max_length=MAX_PASSWORD_LENGTH)
    if estimate["guesses_log10"] < MIN_GUESSES_LOG10:
        pattern = estimate["feedback"]["warning"] or "it is made of guessable words or patterns"
        raise ValidationError(
            "This device password is too easy to guess: %(pattern)s It would take about 10^%(found)d "
            "guesses; a typed password needs 10^%(needed)d or more. Use a generated one (leave the password "
            "out) or a longer random string.",
            code="password_too_weak",
            params={
                "pattern": pattern if pattern.endswith(".") else pattern + ".",
                "found": int(estimate["guesses_log10"]),
                "needed": MIN_GUESSES_LOG10,
            },
        )
