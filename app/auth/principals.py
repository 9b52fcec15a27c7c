"""Principals: every data access names who asks, so access control is a policy, not a retrofit.

Single-user mode has one principal, the local administrator; users and API keys come later.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """The caller of a use case. ``name`` is what the index records as owner."""

    name: str
    is_admin: bool = False

    def may_see(self, owner: str) -> bool:
        """Administrators see everything; others only what they own."""
        return self.is_admin or owner == self.name


#: The only principal while Lightbox runs single-user on loopback.
LOCAL_ADMIN = Principal("local", is_admin=True)
