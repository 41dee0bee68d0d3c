"""bcrypt device passwords (this file exists only in projects generated with device_password_hash=bcrypt)."""

import pytest
from django.core.exceptions import ValidationError

from apps.devices import password_scheme
from apps.devices.bcrypt_passwords import bcrypt_check, bcrypt_hash
from apps.devices.passwords import validate_device_password


def test_bcrypt_round_trip_and_limits():
    stored = bcrypt_hash("correct horse battery staple", rounds=4)
    assert stored.startswith("$2b$04$")
    assert bcrypt_check("correct horse battery staple", stored)
    assert not bcrypt_check("correct horse battery stapler", stored)
    assert not bcrypt_check("x" * 73, stored)
    assert not bcrypt_check("anything", "not-a-bcrypt-hash")
    with pytest.raises(ValueError, match="72 bytes"):
        bcrypt_hash("x" * 73, rounds=4)


def test_bcrypt_refuses_password_over_72_bytes(monkeypatch):
    monkeypatch.setattr(password_scheme, "ALGORITHM", "bcrypt")
    with pytest.raises(ValidationError, match="72 bytes"):
        validate_device_password("é" * 40)  # 80 bytes in UTF-8
