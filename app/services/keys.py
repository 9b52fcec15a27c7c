"""API keys: ``lbx_<id>_<secret>``, shown once, stored as a hash, with a scope and an optional expiry.

Key create and revoke each happen in one method here, which records them in the audit trail (the
key's id, owner and scope; never the key). Using a key is not a security event of its own: the
access it is used for is recorded with ``actor_type`` ``api_key``.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.auth import keys, policy
from app.auth.principals import ActorType, Principal, Scope
from app.errors import InvalidRequest, NotAuthenticated, NotFound
from app.index.access import AccessStore, TokenRow
from app.services.audit import Action, AuditService, Detail
from app.services.users import now_us, user_principal

DAY_US = 86_400 * 1_000_000
LAST_USED_RESOLUTION_US = 60 * 1_000_000  # last_used_at is written at most once a minute per key
MAX_EXPIRY_DAYS = 3650


@dataclass(frozen=True)
class NewKey:
    id: str
    key: str  # the only time the secret is seen
    scope: Scope
    expires_at_us: int | None


class KeyService:
    def __init__(self, store: AccessStore, audit: AuditService) -> None:
        self.store = store
        self.audit = audit

    async def create(
        self,
        principal: Principal,
        name: str,
        scope: Scope,
        expires_in_days: int | None = None,
        username: str | None = None,
    ) -> NewKey:
        """Key create, for the caller (or, for an administrator, for ``username``)."""
        detail: Detail = {
            "user": (username or principal.name)[:128],
            "scope": scope.label,
            "expires_in_days": expires_in_days,
        }
        with self.audit.on_failure(principal, Action.KEY_CREATE, detail=detail):
            new = await self._create(principal, name, scope, expires_in_days, username)
        self.audit.record(principal, Action.KEY_CREATE, detail={**detail, "key_id": new.id})
        return new

    async def _create(
        self, principal: Principal, name: str, scope: Scope, expires_in_days: int | None, username: str | None
    ) -> NewKey:
        policy.key_scope_allowed(principal, scope)
        owner = username or principal.name
        if owner != principal.name:
            policy.require_admin(principal)
        user = await self.store.user(owner)
        if user is None and owner == principal.name:
            raise InvalidRequest("API keys belong to user accounts: this caller has none (single-user mode)")
        if user is None:
            raise NotFound(f"no user is named {owner[:80]!r}")
        if scope is Scope.ADMIN and user.role != "admin":
            raise InvalidRequest("only an administrator's key can have scope admin")
        if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise InvalidRequest(f"expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}")
        if not 1 <= len(name) <= 128:
            raise InvalidRequest("a key's name is 1-128 characters")
        secret = keys.new_secret(keys.Kind.API_KEY)
        now = now_us()
        expires = now + expires_in_days * DAY_US if expires_in_days else None
        await self.store.add_key(secret.id, user.id, name, scope.label, secret.hash, now, expires)
        return NewKey(secret.id, secret.text, scope, expires)

    async def list(self, principal: Principal) -> list[TokenRow]:
        """The caller's keys (never their secrets)."""
        policy.require_account(principal)
        return await self.store.keys(username=principal.name)

    async def revoke(self, principal: Principal, key_id: str) -> None:
        """Key revoke: the owner or an administrator; effective on the very next request."""
        detail: Detail = {"key_id": key_id[:40]}
        with self.audit.on_failure(principal, Action.KEY_REVOKE, detail=detail):
            policy.require_account(principal)
            found = await self.store.keys(key_id=key_id)
            if not found or (found[0].user.username != principal.name and not principal.is_admin):
                raise NotFound(f"no API key has the id {key_id[:40]!r}")
            if found[0].user.username != principal.name:
                policy.require_admin(principal)
            await self.store.delete_key(key_id)
        self.audit.record(principal, Action.KEY_REVOKE, detail={**detail, "user": found[0].user.username})

    async def authenticate(self, secret: keys.Secret, username: str | None = None) -> Principal:
        """The principal of an API key (for Basic, ``username`` must be the key's owner)."""
        found = await self.store.keys(key_id=secret.id)
        row = found[0] if found else None
        if row is None or not secret.matches(row.secret_hash) or row.user.disabled:
            raise NotAuthenticated("the API key is not valid (revoked, or its user is disabled)")
        if username is not None and username != row.user.username:
            raise NotAuthenticated("the API key belongs to another user")
        now = now_us()
        if row.expires_at_us is not None and row.expires_at_us <= now:
            raise NotAuthenticated("the API key has expired")
        if row.last_used_at_us is None or now - row.last_used_at_us > LAST_USED_RESOLUTION_US:
            await self.store.touch_key(row.id, now)
        principal = user_principal(row.user, ActorType.API_KEY, Scope.parse(row.scope or "read"))
        return Principal(principal.name, principal.is_admin, principal.actor_type, principal.scope, None, row.id)
