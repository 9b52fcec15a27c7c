"""User accounts and logins: add, change, delete users; log in and out; check a password.

Each security event happens in exactly one method here (login success/failure in
:meth:`UserService.check_password`, logout, user add/change/delete), which records it in the audit
trail (issue 10). Passwords are argon2id hashes, verified in a worker thread (tens of ms each).

Basic credentials are checked on every request. A wrong Basic password is a failed login like any
other; a right one is *not* recorded as a login: it opens no session, and the request's own access
record already names the user, their credential type and address, so a login record per request
would double the trail and bury the real logins. Throttled attempts (429) are not recorded either:
no password was checked, and recording them would let anyone grow the trail without bound; the
failures that led to the throttle are in it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace

from anyio import to_thread

from app.auth import keys, passwords, policy
from app.auth.principals import LOCAL_ADMIN, STARTUP, ActorType, Principal, Role, Scope, anonymous
from app.auth.throttle import LoginThrottle
from app.config import Settings
from app.errors import Conflict, InvalidRequest, NotAuthenticated, NotFound
from app.index.access import AccessStore, UserRow
from app.services.audit import Action, AuditService, Detail, Outcome

ADMIN_USERNAME = "admin"
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_SECRET_SHAPE = re.compile(r"lb[xts]_", re.IGNORECASE)  # how our keys and tokens begin (app.auth.keys)
BAD_LOGIN = "authentication failed: wrong user name or password"
#: The actor of a failed login whose typed name no account can have: it may be a pasted key,
#: token or password, so it is not recorded.
NOT_A_USERNAME = "(not a user name)"


def could_be_username(text: str) -> bool:
    """What :func:`_check_username` accepts: never the shape of a key or token."""
    return _USERNAME.fullmatch(text) is not None and not _SECRET_SHAPE.match(text) and not text.startswith("share:")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Login:
    """A new login token, shown once; the CSRF token guards cookie-authenticated writes."""

    token: str
    csrf_token: str
    expires_in: int


def user_principal(user: UserRow, actor: ActorType = ActorType.USER, scope: Scope | None = None) -> Principal:
    """The principal of a user's credential; a key carries at most its scope (never admin for a user)."""
    is_admin = user.role == Role.ADMIN.value
    full = Scope.ADMIN if is_admin else Scope.WRITE
    return Principal(user.username, is_admin, actor, min(scope or full, full))


def _check_username(username: str) -> str:
    if not could_be_username(username):
        raise InvalidRequest(
            "a user name is 1-128 letters, digits, '.', '_', '@' or '-', starting with a letter/digit"
            " (and not with 'lbx_', 'lbt_' or 'lbs_', how keys and tokens begin)"
        )
    return username


def _check_password(password: str) -> str:
    problem = passwords.password_problem(password)
    if problem:
        raise InvalidRequest(problem)
    return password


class UserService:
    """Accounts and login tokens over :class:`AccessStore`."""

    def __init__(self, settings: Settings, store: AccessStore, audit: AuditService) -> None:
        self.settings = settings
        self.store = store
        self.audit = audit
        self.throttle = LoginThrottle()

    # -- first start ----------------------------------------------------------------------------
    async def bootstrap(self) -> str | None:
        """With auth required and no user yet, create ``admin``; the generated password if one was made."""
        if not self.settings.auth_required or await self.store.count_users():
            return None
        given = self.settings.admin_password.get_secret_value() if self.settings.admin_password else None
        password = given or passwords.generate_password()
        password_hash = await to_thread.run_sync(passwords.hash_password, password)
        try:
            await self.store.add_user(ADMIN_USERNAME, password_hash, Role.ADMIN.value, now_us())
        except Conflict:  # another worker created it first
            return None
        self.audit.record(STARTUP, Action.USER_CREATE, detail={"user": ADMIN_USERNAME, "role": Role.ADMIN.value})
        return None if given else password

    # -- logins ---------------------------------------------------------------------------------
    async def check_password(self, username: str, password: str, client: str | None, *, basic: bool = False) -> UserRow:
        """Login success or failure (rate limited per user name and client address); the user on success.

        A failure is recorded with the typed name as an anonymous actor (never the password); a
        success only when it opens a session (``basic=False``; see the module docstring)."""
        self.throttle.check(username, client)
        user = await self.store.user(username) if len(username) <= 128 else None
        ok = await to_thread.run_sync(passwords.verify_password, user.password_hash if user else None, password)
        via = {"via": "basic" if basic else "login"}
        if user is None or not ok or user.disabled:
            self.throttle.failed(username, client)
            why = "unknown_user" if user is None else "wrong_password" if not ok else "user_disabled"
            actor = anonymous(username if could_be_username(username) else NOT_A_USERNAME)
            self.audit.record(actor, Action.LOGIN, Outcome.FAILURE, reason=why, detail=via)
            raise NotAuthenticated(BAD_LOGIN)
        self.throttle.succeeded(username)
        if not basic:
            self.audit.record(user_principal(user), Action.LOGIN, detail=via)
        return user

    async def login(self, username: str, password: str, client: str | None) -> Login:
        """Log in: a new login token (the login itself is recorded by :meth:`check_password`)."""
        user = await self.check_password(username, password, client)
        secret, csrf = keys.new_secret(keys.Kind.LOGIN), keys.new_secret(keys.Kind.LOGIN).secret
        now = now_us()
        expires = now + self.settings.session_seconds * 1_000_000
        await self.store.add_login(secret.id, user.id, secret.hash, keys.digest(csrf), now, expires)
        return Login(secret.text, csrf, self.settings.session_seconds)

    async def authenticate_login(self, secret: keys.Secret) -> tuple[Principal, str]:
        """The principal of a login token and the hash of its CSRF token; NotAuthenticated if not live."""
        row = await self.store.login(secret.id)
        if row is None or not secret.matches(row.secret_hash) or row.user.disabled:
            raise NotAuthenticated("the login token is not valid (logged out, expired or revoked)")
        if row.expires_at_us is not None and row.expires_at_us <= now_us():
            raise NotAuthenticated("the login token has expired: log in again")
        return replace(user_principal(row.user), credential_id=row.id), row.csrf_hash or ""

    async def logout(self, principal: Principal) -> None:
        """End the login token the caller used (a key or Basic credentials have no session to end)."""
        session = principal.actor_type is ActorType.USER and principal.credential_id is not None
        with self.audit.on_failure(principal, Action.LOGOUT):
            if session and principal.credential_id:
                await self.store.delete_login(principal.credential_id)
        self.audit.record(principal, Action.LOGOUT, detail={"session_ended": session})

    async def acting_as(self, username: str) -> Principal:
        """The principal a DICOM peer acts as (``LIGHTBOX_DIMSE_PEERS`` names its user).

        Single-user mode: the local administrator. With auth: that user, at most with write scope (a
        peer stores, queries and retrieves; it never administers); NotAuthenticated when the user is
        unknown or disabled, so the association is rejected, or an operation on an open one refused.
        """
        if not self.settings.auth_required:
            return LOCAL_ADMIN
        user = await self.store.user(username) if len(username) <= 128 else None
        if user is None or user.disabled:
            raise NotAuthenticated("the user this DICOM peer acts as is unknown or disabled")
        return user_principal(user, scope=Scope.WRITE)

    # -- administration -------------------------------------------------------------------------
    async def add(self, principal: Principal, username: str, password: str | None, role: Role) -> tuple[UserRow, str]:
        """User add; the password (generated when none is given) is returned for the CLI to print once."""
        detail: Detail = {"user": username[:128], "role": role.value}
        with self.audit.on_failure(principal, Action.USER_CREATE, detail=detail):
            policy.require_admin(principal)
            password = _check_password(password) if password is not None else passwords.generate_password()
            password_hash = await to_thread.run_sync(passwords.hash_password, password)
            user = await self.store.add_user(_check_username(username), password_hash, role.value, now_us())
        self.audit.record(principal, Action.USER_CREATE, detail=detail)
        return user, password

    async def list(self, principal: Principal) -> list[UserRow]:
        policy.require_admin(principal)
        return await self.store.users()

    async def change(
        self,
        principal: Principal,
        username: str,
        role: Role | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> UserRow:
        """User change: role, disabled, password; disabling or a new password ends the user's logins."""
        changed = ",".join(
            field
            for field, value in (("role", role), ("disabled", disabled), ("password", password))
            if value is not None
        )
        detail: Detail = {"user": username[:128], "changed": changed, "role": role and role.value, "disabled": disabled}
        with self.audit.on_failure(principal, Action.USER_UPDATE, detail=detail):
            policy.require_admin(principal)
            values: dict[str, object] = {}
            if role is not None:
                values["role"] = role.value
            if disabled is not None:
                values["disabled"] = disabled
            if password is not None:
                values["password_hash"] = await to_thread.run_sync(passwords.hash_password, _check_password(password))
            if values and not await self.store.update_user(username, **values):
                raise NotFound(f"no user is named {username[:80]!r}")
            user = await self.store.user(username)
            if user is None:
                raise NotFound(f"no user is named {username[:80]!r}")
        self.audit.record(principal, Action.USER_UPDATE, detail=detail)
        return user

    async def delete(self, principal: Principal, username: str) -> None:
        """User delete: their logins, keys, grants and shares go too; their files stay (admins see them)."""
        detail: Detail = {"user": username[:128]}
        with self.audit.on_failure(principal, Action.USER_DELETE, detail=detail):
            policy.require_admin(principal)
            if username == principal.name:
                raise InvalidRequest("an administrator cannot delete their own account")
            if not await self.store.delete_user(username):
                raise NotFound(f"no user is named {username[:80]!r}")
        self.audit.record(principal, Action.USER_DELETE, detail=detail)
