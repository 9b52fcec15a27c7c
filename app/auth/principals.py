"""Principals: every data access names who asks, so access control is a policy, not a retrofit.

Single-user mode has one principal, the local administrator; users, API keys and share tokens
resolve to principals of their own kind (``actor_type``), which the audit trail records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ActorType(enum.StrEnum):
    """What kind of credential the caller presented (the audit record's ``actor_type``)."""

    USER = "user"
    API_KEY = "api_key"
    SHARE = "share"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    """The caller of a use case. ``name`` is what the index records as owner."""

    name: str
    is_admin: bool = False
    actor_type: ActorType = ActorType.USER

    def may_see(self, owner: str) -> bool:
        """Administrators see everything; others only what they own."""
        return self.is_admin or owner == self.name


#: The only principal while Lightbox runs single-user on loopback.
LOCAL_ADMIN = Principal("local", is_admin=True)
