"""Grants: a user lets another user read (or change) the instances of one study that they own.

A grant covers only the instances of the study its grantor owns, or every instance of it when the
grantor is an administrator (:mod:`app.auth.policy` turns that into the index's WHERE clause).
Grant create and revoke each happen in one method here, which records them in the audit trail.
"""

from __future__ import annotations

import enum

from app.auth import policy
from app.auth.principals import Principal
from app.errors import FileNotFound, Forbidden, InvalidRequest, NotFound
from app.index.access import AccessStore, GrantRow
from app.index.base import InstanceIndex
from app.services.audit import Action, AuditService, Detail
from app.services.users import now_us


class Access(enum.StrEnum):
    READ = "read"
    WRITE = "write"


async def require_user_row(store: AccessStore, principal: Principal) -> None:
    """Grants and share links are rows naming a user account; single-user mode's caller has none."""
    if await store.user(principal.name) is None:
        raise InvalidRequest("grants and share links belong to user accounts: this caller has none (single-user mode)")


def no_study(study_instance_uid: str) -> FileNotFound:
    return FileNotFound(f"no stored study has Study Instance UID {study_instance_uid[:80]!r}")


class GrantService:
    def __init__(self, store: AccessStore, index: InstanceIndex, audit: AuditService) -> None:
        self.store = store
        self.index = index
        self.audit = audit

    async def create(self, principal: Principal, study_instance_uid: str, username: str, access: Access) -> GrantRow:
        """Grant create: by the study's owner (for their instances) or an administrator (for all)."""
        detail: Detail = {"grantee": username[:128], "access": access.value}
        with self.audit.on_failure(
            principal, Action.GRANT_CREATE, study_instance_uid=study_instance_uid, detail=detail
        ):
            grant = await self._create(principal, study_instance_uid, username, access)
        self.audit.record(
            principal,
            Action.GRANT_CREATE,
            study_instance_uid=study_instance_uid,
            detail={**detail, "grant_id": grant.id},
        )
        return grant

    async def _create(self, principal: Principal, study_instance_uid: str, username: str, access: Access) -> GrantRow:
        policy.require_account(principal)
        policy.require_write(principal, "granting access")
        if not principal.is_admin:
            study = await self.index.study_access(principal, study_instance_uid)
            if not study.visible:
                raise no_study(study_instance_uid)
            if not study.owned:
                raise Forbidden("only the study's owner or an administrator can grant access to it")
        if username == principal.name:
            raise InvalidRequest("a grant names another user")
        await require_user_row(self.store, principal)
        if await self.store.user(username) is None:
            raise NotFound(f"no user is named {username[:80]!r}")
        return await self.store.add_grant(study_instance_uid, principal.name, username, access.value, now_us())

    async def list(self, principal: Principal) -> list[GrantRow]:
        """Grants the caller gave or holds (an administrator: all)."""
        policy.require_account(principal)
        return await self.store.grants(None if principal.is_admin else principal.name)

    async def revoke(self, principal: Principal, grant_id: int) -> None:
        """Grant revoke: its grantor or an administrator; effective on the very next request."""
        with self.audit.on_failure(principal, Action.GRANT_REVOKE, detail={"grant_id": grant_id}):
            policy.require_account(principal)
            found = await self.store.grants(grant_id=grant_id)
            grant = found[0] if found else None
            if grant is None or not (principal.is_admin or principal.name in (grant.grantor, grant.grantee)):
                raise NotFound(f"no grant has the id {grant_id}")  # one you neither gave nor hold: as absent
            if grant.grantor == principal.name:
                policy.require_write(principal, "revoking a grant")
            elif principal.is_admin:
                policy.require_admin(principal)
            else:
                raise Forbidden("only the grantor or an administrator can revoke a grant")
            await self.store.delete_grant(grant_id)
        detail: Detail = {
            "grant_id": grant_id,
            "grantor": grant.grantor,
            "grantee": grant.grantee,
            "access": grant.access,
        }
        self.audit.record(principal, Action.GRANT_REVOKE, study_instance_uid=grant.study_instance_uid, detail=detail)
