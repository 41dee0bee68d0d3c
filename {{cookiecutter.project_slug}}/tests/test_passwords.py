"""Device password hashes match EMQX 5.8 byte for byte (vectors from EMQX's own tests)."""

import hashlib
import random
import secrets
import string

import pytest
from django.core.exceptions import ValidationError

from apps.devices import password_scheme, passwords
from apps.devices.passwords import (
    MIN_PASSWORD_LENGTH,
    generate_device_password,
    hash_password,
    pbkdf2_digest,
    salted_digest,
    validate_device_password,
    verify_password,
)


@pytest.mark.parametrize(
    ("algorithm", "position", "password", "salt", "starts", "ends"),
    [
        ("sha256", "suffix", "password", "salt", "7a37b85c", "607b99"),
        ("sha512", "suffix", "password", "salt", "fa6a2185", "bd70e97f"),
        ("sha", "prefix", "password", "salt", "59b3e8d6", "30789"),
        ("md5", "prefix", "password", "salt", "67a1e09b", "d663aa"),
        ("sha256", "suffix", "secret", "salt", "f84fa214", ""),
    ],
)
def test_salted_digest_matches_emqx_vectors(algorithm, position, password, salt, starts, ends):
    digest = salted_digest(password, salt, algorithm, position)
    assert digest.startswith(starts)
    assert digest.endswith(ends)


def test_salt_position_changes_the_digest():
    assert (
        salted_digest("password", "salt", "sha256", "suffix") == hashlib.sha256(b"passwordsalt").hexdigest()
    )
    assert (
        salted_digest("password", "salt", "sha256", "prefix") == hashlib.sha256(b"saltpassword").hexdigest()
    )
    assert salted_digest("password", "salt", "sha256", "disable") == hashlib.sha256(b"password").hexdigest()


def test_pbkdf2_matches_emqx_vector():
    digest = pbkdf2_digest("password", "ATHENA.MIT.EDUraeburn", "sha", 2, 32)
    assert digest.startswith("01dbee7f")
    assert digest.endswith("ad799d86")


def test_salt_is_used_as_raw_bytes_not_hex_decoded():
    # A hex-looking salt is hashed as its text: EMQX never decodes it.
    assert salted_digest("pw", "00ff", "sha256", "suffix") == hashlib.sha256(b"pw00ff").hexdigest()


# bcrypt is part of the project (module and package) only when it was generated for it.
SCHEMES = ("sha256", "pbkdf2", "bcrypt") if password_scheme.ALGORITHM == "bcrypt" else ("sha256", "pbkdf2")


@pytest.mark.parametrize("algorithm", SCHEMES)
def test_every_scheme_hashes_and_verifies(monkeypatch, algorithm):
    monkeypatch.setattr(password_scheme, "ALGORITHM", algorithm)
    monkeypatch.setattr(password_scheme, "BCRYPT_ROUNDS", 4)
    password = generate_device_password()
    stored, salt = hash_password(password)
    assert salt is not None
    assert verify_password(password, stored, salt)
    assert not verify_password(password + "x", stored, salt)
    assert not verify_password(password, "", salt)
    if algorithm == "bcrypt":
        assert salt == ""
        assert stored.startswith("$2b$")
    else:
        assert len(salt) == 2 * passwords.SALT_BYTES
        # Same password, new salt, new hash: equal passwords do not show in the table.
        assert hash_password(password) != (stored, salt)


def test_configured_scheme_produces_what_emqx_computes():
    stored, salt = hash_password("a device password!")
    if password_scheme.ALGORITHM == "sha256":
        expected = salted_digest("a device password!", salt, "sha256", password_scheme.SALT_POSITION)
    elif password_scheme.ALGORITHM == "pbkdf2":
        expected = hashlib.pbkdf2_hmac(
            password_scheme.PBKDF2_MAC,
            b"a device password!",
            salt.encode(),
            password_scheme.PBKDF2_ITERATIONS,
            password_scheme.PBKDF2_DK_LENGTH,
        ).hex()
    else:
        assert stored.startswith("$2b$")
        assert verify_password("a device password!", stored, salt)
        return
    assert stored == expected


def test_verification_is_case_insensitive_on_hex_like_emqx(monkeypatch):
    monkeypatch.setattr(password_scheme, "ALGORITHM", "sha256")
    stored, salt = hash_password("uppercase-hex-check")
    assert verify_password("uppercase-hex-check", stored.upper(), salt)


def test_generated_passwords_carry_at_least_128_bits():
    values = {generate_device_password() for _ in range(200)}
    assert len(values) == 200
    for value in values:
        # token_urlsafe: 6 bits per character.
        assert len(value) * 6 >= 128
        assert len(value) >= MIN_PASSWORD_LENGTH


def test_short_human_password_is_refused():
    with pytest.raises(ValidationError, match="at least 16"):
        validate_device_password("x" * (MIN_PASSWORD_LENGTH - 1))
    validate_device_password("k3V9q-Zr7mW2x8Ty"[:MIN_PASSWORD_LENGTH])


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("a" * 16, "Repeats"),
        (" " * 16, "Repeats"),
        ("\t" * 20, "Repeats"),
        ("abcdefghijklmnop", "Sequences"),
        ("1234567890123456", "commonly used"),
        ("qwertyuiopasdfgh", "commonly used"),
        ("passwordpassword", "Repeats"),
        ("iloveyouiloveyou1", "Repeats"),
        ("summer2024summer2024", "Repeats"),
        ("P@ssw0rd12345678", "easy to guess"),
    ],
)
def test_low_entropy_passwords_are_refused_with_the_reason(password, reason):
    with pytest.raises(ValidationError) as refused:
        validate_device_password(password)
    assert refused.value.code == "password_too_weak"
    message = refused.value.messages[0]
    assert reason in message
    assert "too easy to guess" in message
    assert "10^12" in message


def test_the_device_username_counts_as_a_known_word():
    validate_device_password("sensor-kitchen-07!x")
    with pytest.raises(ValidationError, match="too easy to guess"):
        validate_device_password("sensor-kitchen-07!x", username="sensor-kitchen-07")


def test_random_passwords_typed_or_generated_pass():
    rng = random.Random(16)  # fixed: the same 200 typed passwords every run
    alphabet = string.ascii_letters + string.digits + "-_"
    for _ in range(200):
        validate_device_password("".join(rng.choice(alphabet) for _ in range(MIN_PASSWORD_LENGTH)))
        validate_device_password(generate_device_password())


def test_overlong_password_is_refused():
    with pytest.raises(ValidationError, match="at most 128 characters"):
        validate_device_password(secrets.token_urlsafe(100))
