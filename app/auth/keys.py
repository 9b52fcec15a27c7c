"""The bearer secrets Lightbox issues: API keys, login tokens and share tokens.

Each looks like ``<prefix>_<id>_<secret>``: ``lbx_`` for API keys (a prefix secret scanners can
match), ``lbt_`` for login tokens, ``lbs_`` for share tokens. The id finds the row; the secret
(256 random bits) is stored only as its SHA-256 and compared with :func:`hmac.compare_digest`,
so a lookup's timing reveals nothing about the secret.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass


class Kind(enum.StrEnum):
    API_KEY = "lbx"
    LOGIN = "lbt"
    SHARE = "lbs"


_FORMAT = re.compile(r"(lbx|lbt|lbs)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Secret:
    """A parsed (or newly made) bearer secret."""

    kind: Kind
    id: str
    secret: str

    @property
    def text(self) -> str:
        """What the client presents; shown once, never stored or logged."""
        return f"{self.kind.value}_{self.id}_{self.secret}"

    @property
    def hash(self) -> str:
        return digest(self.secret)

    def matches(self, stored_hash: str) -> bool:
        return hmac.compare_digest(self.hash.encode(), stored_hash.encode())


def digest(secret: str) -> str:
    """SHA-256 is enough for a 256-bit random secret (no dictionary to attack, unlike a password)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(kind: Kind) -> Secret:
    return Secret(kind, secrets.token_hex(8), secrets.token_urlsafe(32))


def parse(text: str) -> Secret | None:
    """The secret ``text`` spells, or None if it is not one of ours."""
    match = _FORMAT.fullmatch(text)
    if match is None:
        return None
    return Secret(Kind(match[1]), match[2], match[3])
