"""Password hashing with argon2id (RFC 9106), the OWASP-recommended memory-hard function.

Hashing and verifying take tens of milliseconds on purpose: callers run them in a worker thread.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (64 MiB, 3 passes)

#: Verified against when the user does not exist, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_LENGTH = 8
MAX_LENGTH = 1024


def _secret(password: str) -> bytes:
    """The password's UTF-8 bytes; a lone surrogate (JSON's ``"\\ud800"``) kept as its own bytes rather than
    failing, so every string a client can send hashes and verifies (valid text encodes as plain UTF-8)."""
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str) -> str:
    return _hasher.hash(_secret(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; a missing user still costs one verification (no timing oracle)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, _secret(password)) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A strong password for generated accounts: 24 URL-safe characters (~143 bits)."""
    return secrets.token_urlsafe(18)


def password_problem(password: str) -> str | None:
    """Why a chosen password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"the password must be at most {MAX_LENGTH} characters long"
    return None
