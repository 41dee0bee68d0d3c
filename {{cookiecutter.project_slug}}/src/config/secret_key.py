"""Refuse to run in production on a secret key that is missing, an example, or guessable."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# Same thresholds as Django's own `check --deploy` (security.W009), so a key accepted here passes there too.
MIN_LENGTH = 50
MIN_UNIQUE_CHARACTERS = 5
INSECURE_PREFIXES = ("django-insecure-", "change-me", "changeme", "test-only-")


def example_secret_key(example_file: Path) -> str:
    """The DJANGO_SECRET_KEY value shipped in .env.example ("" when absent): it is public, so never valid."""
    if not example_file.is_file():
        return ""
    for line in example_file.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == "DJANGO_SECRET_KEY":
            return value.strip().strip("'\"")
    return ""


def check_production_secret_key(secret_key: str, example_file: Path) -> None:
    """Raise ImproperlyConfigured, naming the problem, unless the key is fit for production."""
    key = secret_key.strip()
    if not key:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is missing or empty while DJANGO_DEBUG=False: set a long random value in .env."
        )
    example = example_secret_key(example_file)
    if example and key == example:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is the example value from .env.example: generate a fresh random key."
        )
    if key.lower().startswith(INSECURE_PREFIXES):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is a development or placeholder key: generate a fresh random one."
        )
    if len(key) < MIN_LENGTH or len(set(key)) < MIN_UNIQUE_CHARACTERS:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak: use at least {MIN_LENGTH} random characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
