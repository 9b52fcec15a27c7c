"""The access-control rows (users, login tokens, API keys, grants, shares) on the index's database.

Plain storage: who may do what is decided by :mod:`app.auth.policy` and the services; this module
only reads and writes rows, each call one short transaction, so a revocation committed by any
worker is seen by every worker's next request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, RowMapping, delete, false, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import Conflict
from app.index.schema import api_keys, grants, login_tokens, shares, users
from app.index.sql import guarded, unstorable_text

T = TypeVar("T")


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool
    created_at_us: int


@dataclass(frozen=True)
class TokenRow:
    """A login token or an API key, with its user (``scope`` is ``None`` for login tokens)."""

    id: str
    secret_hash: str
    expires_at_us: int | None
    user: UserRow
    scope: str | None = None
    csrf_hash: str | None = None
    name: str | None = None
    created_at_us: int = 0
    last_used_at_us: int | None = None


@dataclass(frozen=True)
class GrantRow:
    id: int
    study_instance_uid: str
    grantor: str
    grantee: str
    access: str
    created_at_us: int


@dataclass(frozen=True)
class ShareRow:
    id: str
    study_instance_uid: str
    creator: str
    secret_hash: str
    created_at_us: int
    expires_at_us: int
    creator_role: str = "user"
    creator_disabled: bool = False


def _username_is(username: str) -> ColumnElement[bool]:
    """``users.username = username``; false without asking for a name no database can hold (NUL, a lone
    surrogate): no user name holds one (they are validated at creation)."""
    matches: ColumnElement[bool] = false() if unstorable_text(username) else users.c.username == username
    return matches


_USER_COLUMNS = [c.label(f"u_{c.name}") for c in users.c]


def _user(row: RowMapping) -> UserRow:
    return UserRow(**{c.name: row[f"u_{c.name}"] for c in users.c})


class AccessStore:
    """Rows of :mod:`app.index.schema`'s access tables; ``Conflict`` when a unique name is taken."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _write(self, action: Callable[[AsyncConnection], Awaitable[T]], taken: str = "") -> T:
        async def run() -> T:
            async with self.engine.begin() as conn:
                return await action(conn)

        try:
            return await guarded(run)
        except IntegrityError:
            raise Conflict(taken or "that already exists") from None

    async def _read(self, action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async def run() -> T:
            async with self.engine.connect() as conn:
                return await action(conn)

        return await guarded(run)

    # -- users --------------------------------------------------------------------------------
    async def add_user(self, username: str, password_hash: str, role: str, now_us: int) -> UserRow:
        async def insert(conn: AsyncConnection) -> UserRow:
            values = {"username": username, "password_hash": password_hash, "role": role, "disabled": False}
            result = await conn.execute(users.insert().values(**values, created_at_us=now_us))
            assert result.inserted_primary_key is not None
            return UserRow(int(result.inserted_primary_key[0]), **values, created_at_us=now_us)  # type: ignore[arg-type]

        return await self._write(insert, f"a user named {username!r} already exists")

    async def user(self, username: str) -> UserRow | None:
        async def lookup(conn: AsyncConnection) -> UserRow | None:
            row = (await conn.execute(select(*_USER_COLUMNS).where(_username_is(username)))).first()
            return None if row is None else _user(row._mapping)

        return await self._read(lookup)

    async def users(self) -> list[UserRow]:
        async def lookup(conn: AsyncConnection) -> list[UserRow]:
            rows = (await conn.execute(select(*_USER_COLUMNS).order_by(users.c.username))).all()
            return [_user(row._mapping) for row in rows]

        return await self._read(lookup)

    async def count_users(self) -> int:
        async def count(conn: AsyncConnection) -> int:
            return int(await conn.scalar(select(func.count()).select_from(users)) or 0)

        return await self._read(count)

    async def update_user(self, username: str, **values: Any) -> bool:
        """Change role, disabled or password_hash; a new password or disabling ends the user's logins."""

        async def change(conn: AsyncConnection) -> bool:
            result = await conn.execute(update(users).where(_username_is(username)).values(**values))
            if result.rowcount and ("password_hash" in values or values.get("disabled")):
                user_id = select(users.c.id).where(_username_is(username)).scalar_subquery()
                await conn.execute(delete(login_tokens).where(login_tokens.c.user_id == user_id))
            return bool(result.rowcount)

        return await self._write(change)

    async def delete_user(self, username: str) -> bool:
        """The user, their tokens, keys, grants (either side) and shares; files keep their owner."""

        async def remove(conn: AsyncConnection) -> bool:
            user_id = await conn.scalar(select(users.c.id).where(_username_is(username)))
            if user_id is None:
                return False
            await conn.execute(delete(login_tokens).where(login_tokens.c.user_id == user_id))
            await conn.execute(delete(api_keys).where(api_keys.c.user_id == user_id))
            await conn.execute(delete(grants).where((grants.c.grantor == username) | (grants.c.grantee == username)))
            await conn.execute(delete(shares).where(shares.c.creator == username))
            await conn.execute(delete(users).where(users.c.id == user_id))
            return True

        return await self._write(remove)

    # -- login tokens and API keys ------------------------------------------------------------
    async def add_login(self, token_id: str, user_id: int, secret_hash: str, csrf: str, now: int, exp: int) -> None:
        values = {"id": token_id, "user_id": user_id, "secret_hash": secret_hash, "csrf_hash": csrf}

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(delete(login_tokens).where(login_tokens.c.expires_at_us < now))  # no dead rows pile up
            await conn.execute(login_tokens.insert().values(**values, created_at_us=now, expires_at_us=exp))

        await self._write(insert)

    async def login(self, token_id: str) -> TokenRow | None:
        async def lookup(conn: AsyncConnection) -> TokenRow | None:
            query = select(login_tokens, *_USER_COLUMNS).join(users, users.c.id == login_tokens.c.user_id)
            row = (await conn.execute(query.where(login_tokens.c.id == token_id))).first()
            if row is None:
                return None
            m = row._mapping
            return TokenRow(m["id"], m["secret_hash"], m["expires_at_us"], _user(m), csrf_hash=m["csrf_hash"])

        return await self._read(lookup)

    async def delete_login(self, token_id: str) -> None:
        async def remove(conn: AsyncConnection) -> None:
            await conn.execute(delete(login_tokens).where(login_tokens.c.id == token_id))

        await self._write(remove)

    async def add_key(
        self, key_id: str, user_id: int, name: str, scope: str, secret_hash: str, now: int, expires_at_us: int | None
    ) -> None:
        values = {"id": key_id, "user_id": user_id, "name": name, "scope": scope, "secret_hash": secret_hash}

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(api_keys.insert().values(**values, created_at_us=now, expires_at_us=expires_at_us))

        await self._write(insert)

    async def keys(self, key_id: str | None = None, username: str | None = None) -> list[TokenRow]:
        """One key by id, a user's keys, or (neither given) every key."""

        async def lookup(conn: AsyncConnection) -> list[TokenRow]:
            query = select(api_keys, *_USER_COLUMNS).join(users, users.c.id == api_keys.c.user_id)
            if key_id is not None:
                query = query.where(api_keys.c.id == key_id)
            if username is not None:
                query = query.where(_username_is(username))
            rows = (await conn.execute(query.order_by(api_keys.c.created_at_us))).all()
            return [
                TokenRow(
                    m["id"],
                    m["secret_hash"],
                    m["expires_at_us"],
                    _user(m),
                    scope=m["scope"],
                    name=m["name"],
                    created_at_us=m["created_at_us"],
                    last_used_at_us=m["last_used_at_us"],
                )
                for m in (row._mapping for row in rows)
            ]

        return await self._read(lookup)

    async def touch_key(self, key_id: str, now_us: int) -> None:
        async def touch(conn: AsyncConnection) -> None:
            await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at_us=now_us))

        await self._write(touch)

    async def delete_key(self, key_id: str) -> bool:
        async def remove(conn: AsyncConnection) -> bool:
            return bool((await conn.execute(delete(api_keys).where(api_keys.c.id == key_id))).rowcount)

        return await self._write(remove)

    # -- grants -------------------------------------------------------------------------------
    async def add_grant(self, study_uid: str, grantor: str, grantee: str, access: str, now_us: int) -> GrantRow:
        async def insert(conn: AsyncConnection) -> GrantRow:
            values = {"study_instance_uid": study_uid, "grantor": grantor, "grantee": grantee, "access": access}
            result = await conn.execute(grants.insert().values(**values, created_at_us=now_us))
            assert result.inserted_primary_key is not None
            return GrantRow(int(result.inserted_primary_key[0]), study_uid, grantor, grantee, access, now_us)

        return await self._write(insert, f"{grantee!r} already holds a grant of yours on this study")

    async def grants(self, username: str | None = None, grant_id: int | None = None) -> list[GrantRow]:
        """Grants given or received by ``username`` (None: all), or the one with ``grant_id``."""

        async def lookup(conn: AsyncConnection) -> list[GrantRow]:
            query = select(grants).order_by(grants.c.id)
            if username is not None:
                query = query.where((grants.c.grantor == username) | (grants.c.grantee == username))
            if grant_id is not None:
                query = query.where(grants.c.id == grant_id)
            return [GrantRow(**row._mapping) for row in (await conn.execute(query)).all()]

        return await self._read(lookup)

    async def delete_grant(self, grant_id: int) -> bool:
        async def remove(conn: AsyncConnection) -> bool:
            return bool((await conn.execute(delete(grants).where(grants.c.id == grant_id))).rowcount)

        return await self._write(remove)

    # -- shares -------------------------------------------------------------------------------
    async def add_share(self, row: ShareRow) -> None:
        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(
                shares.insert().values(
                    id=row.id,
                    study_instance_uid=row.study_instance_uid,
                    creator=row.creator,
                    secret_hash=row.secret_hash,
                    created_at_us=row.created_at_us,
                    expires_at_us=row.expires_at_us,
                )
            )

        await self._write(insert)

    async def shares(self, creator: str | None = None, share_id: str | None = None) -> list[ShareRow]:
        async def lookup(conn: AsyncConnection) -> list[ShareRow]:
            query = select(shares, users.c.role, users.c.disabled).join(users, users.c.username == shares.c.creator)
            if creator is not None:
                query = query.where(shares.c.creator == creator)
            if share_id is not None:
                query = query.where(shares.c.id == share_id)
            rows = (await conn.execute(query.order_by(shares.c.created_at_us))).all()
            return [
                ShareRow(
                    **{c.name: row._mapping[c.name] for c in shares.c},
                    creator_role=row._mapping["role"],
                    creator_disabled=bool(row._mapping["disabled"]),
                )
                for row in rows
            ]

        return await self._read(lookup)

    async def delete_share(self, share_id: str) -> bool:
        async def remove(conn: AsyncConnection) -> bool:
            return bool((await conn.execute(delete(shares).where(shares.c.id == share_id))).rowcount)

        return await self._write(remove)
