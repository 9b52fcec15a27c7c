"""Share links: a revocable, expiring, read-only token for the instances of one study.

A share covers the instances of the study that its creator could change when it is used (their
own, those a write grant covers; all for an administrator), so it never exposes more than the
creator holds. The token is a row (its SHA-256), not a stateless JWT: deleting the share stops the
token at once. Share create, use and revoke each happen in one method here, which records them in
the audit trail: a use each time a token resolves (so the creator's question "who opened my link,
from where, when" has one answer), with the study and the creator; never the token. A token that
does not resolve answers 401 unrecorded: anyone can make up tokens, and unthrottled failures would
let them grow the trail without bound (the access log keeps the 401s).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.auth import keys, policy
from app.auth.principals import ActorType, Principal, Role, Scope, ShareScope
from app.config import Settings
from app.errors import Forbidden, InvalidRequest, NotAuthenticated, NotFound
from app.index.access import AccessStore, ShareRow
from app.index.base import InstanceIndex
from app.services.audit import Action, AuditService, Detail
from app.services.grants import no_study, require_user_row
from app.services.users import now_us


@dataclass(frozen=True)
class NewShare:
    row: ShareRow
    token: str  # the only time the secret is seen


class ShareService:
    def __init__(self, settings: Settings, store: AccessStore, index: InstanceIndex, audit: AuditService) -> None:
        self.settings = settings
        self.store = store
        self.index = index
        self.audit = audit

    async def create(self, principal: Principal, study_instance_uid: str, expires_in: int) -> NewShare:
        """Share create: by anyone who may change instances of the study (owner, write grant, admin)."""
        detail: Detail = {"expires_in": expires_in}
        with self.audit.on_failure(
            principal, Action.SHARE_CREATE, study_instance_uid=study_instance_uid, detail=detail
        ):
            new = await self._create(principal, study_instance_uid, expires_in)
        detail = {**detail, "share_id": new.row.id}
        self.audit.record(principal, Action.SHARE_CREATE, study_instance_uid=study_instance_uid, detail=detail)
        return new

    async def _create(self, principal: Principal, study_instance_uid: str, expires_in: int) -> NewShare:
        policy.require_account(principal)
        if not 1 <= expires_in <= self.settings.share_max_seconds:
            raise InvalidRequest(f"expires_in must be 1..{self.settings.share_max_seconds} seconds")
        study = await self.index.study_access(principal, study_instance_uid)
        if not study.visible:
            raise no_study(study_instance_uid)
        if not study.writable:
            raise Forbidden("sharing a study needs write access to it")
        await require_user_row(self.store, principal)
        secret = keys.new_secret(keys.Kind.SHARE)
        now = now_us()
        row = ShareRow(secret.id, study_instance_uid, principal.name, secret.hash, now, now + expires_in * 1_000_000)
        await self.store.add_share(row)
        return NewShare(row, secret.text)

    async def list(self, principal: Principal) -> list[ShareRow]:
        """The caller's share links (an administrator: all)."""
        policy.require_account(principal)
        return await self.store.shares(None if principal.is_admin else principal.name)

    async def revoke(self, principal: Principal, share_id: str) -> None:
        """Share revoke: its creator or an administrator; the token stops working at once."""
        detail: Detail = {"share_id": share_id[:40]}
        with self.audit.on_failure(principal, Action.SHARE_REVOKE, detail=detail):
            policy.require_account(principal)
            found = await self.store.shares(share_id=share_id)
            if not found or (found[0].creator != principal.name and not principal.is_admin):
                raise NotFound(f"no share has the id {share_id[:40]!r}")
            policy.require_write(principal, "revoking a share")
            await self.store.delete_share(share_id)
        detail = {**detail, "creator": found[0].creator}
        self.audit.record(principal, Action.SHARE_REVOKE, study_instance_uid=found[0].study_instance_uid, detail=detail)

    async def authenticate(self, secret: keys.Secret) -> Principal:
        """Share use: the read-only principal of a live share token."""
        found = await self.store.shares(share_id=secret.id)
        row = found[0] if found else None
        if row is None or not secret.matches(row.secret_hash) or row.creator_disabled:
            raise NotAuthenticated("the share link is not valid (revoked, or its creator is disabled)")
        if row.expires_at_us <= now_us():
            raise NotAuthenticated("the share link has expired")
        scope = ShareScope(row.id, row.study_instance_uid, row.creator, row.creator_role == Role.ADMIN.value)
        principal = Principal(f"share:{row.id}", False, ActorType.SHARE, Scope.READ, scope, row.id)
        detail: Detail = {"share_id": row.id, "creator": row.creator}
        self.audit.record(principal, Action.SHARE_USE, study_instance_uid=row.study_instance_uid, detail=detail)
        return principal
