"""Principals: every data access names who asks, so access control is a policy, not a retrofit.

Single-user mode has one principal, the local administrator; users, API keys and share tokens
resolve to principals of their own kind (``actor_type``), which the audit trail records. What a
principal may see and do is decided by :mod:`app.auth.policy` alone, from these fields.
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


class Role(enum.StrEnum):
    """A user account's role: ``admin`` sees and manages everything."""

    USER = "user"
    ADMIN = "admin"


class Scope(enum.IntEnum):
    """What a credential may do at most (an API key's ``scope``; a login is ``write`` or ``admin``)."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Scope:
        return cls[text.upper()]


@dataclass(frozen=True)
class ShareScope:
    """A share link's reach: one Study Instance UID, as far as its creator could write it."""

    share_id: str
    study_instance_uid: str
    creator: str
    creator_is_admin: bool


@dataclass(frozen=True)
class Principal:
    """The caller of a use case. ``name`` is what the index records as owner (the user name)."""

    name: str
    is_admin: bool = False
    actor_type: ActorType = ActorType.USER
    scope: Scope = Scope.ADMIN
    share: ShareScope | None = None
    credential_id: str | None = None  # the API key or login token id, never its secret

    @property
    def may_write(self) -> bool:
        """Upload, delete, grant: a login or a ``write``/``admin`` key; never a share link."""
        return self.share is None and self.scope >= Scope.WRITE


#: The only principal while Lightbox runs single-user on loopback.
LOCAL_ADMIN = Principal("local", is_admin=True)
#: The service itself, creating ``admin`` at the first start with auth (a ':' no user name can hold).
STARTUP = Principal("lightbox:startup", is_admin=True)


def anonymous(typed_name: str) -> Principal:
    """Someone not (yet) authenticated, named by what they typed: the actor of a failed login."""
    return Principal(typed_name, actor_type=ActorType.ANONYMOUS, scope=Scope.READ)
