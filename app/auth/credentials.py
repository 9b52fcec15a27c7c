"""Credentials -> Principal: the one resolver every transport uses, in the issue's order.

1. ``Authorization: Bearer <token>``: an API key (``lbx_``), a login token (``lbt_``) or a share token (``lbs_``).
2. ``Authorization: Basic <user:password>`` or ``<user:api-key>`` (curl ``-u``, dicomweb-client, OHIF).
3. The session cookie set by login; a state-changing request with it needs the CSRF header.
4. ``?token=<share token>`` on GET/HEAD only.

An Authorization header that is present but wrong fails (401); it never falls through to a
weaker credential. Verification of each kind lives in its service (one place per security event).
"""

from __future__ import annotations

import binascii
import hmac
from base64 import b64decode
from dataclasses import dataclass

from app.auth import keys
from app.auth.principals import Principal
from app.errors import Forbidden, NotAuthenticated
from app.services.keys import KeyService
from app.services.shares import ShareService
from app.services.users import UserService, user_principal

SESSION_COOKIE = "lightbox_session"
TOKEN_PARAMETER = "token"  # ?token=<share token> on GET requests (a credential, never a search key)
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REQUIRED = "authentication required: send Authorization: Bearer <token> or Basic credentials"


@dataclass(frozen=True)
class Presented:
    """What a request carries, taken from the transport (no HTTP types below this line)."""

    method: str
    authorization: str | None = None
    cookie: str | None = None
    csrf: str | None = None
    query_token: str | None = None
    client: str | None = None


class Authenticator:
    def __init__(self, users: UserService, api_keys: KeyService, shares: ShareService) -> None:
        self.users = users
        self.keys = api_keys
        self.shares = shares

    async def resolve(self, presented: Presented) -> Principal:
        if presented.authorization:
            scheme, _, value = presented.authorization.strip().partition(" ")
            if scheme.lower() == "bearer":
                return await self._bearer(value.strip())
            if scheme.lower() == "basic":
                return await self._basic(value.strip(), presented.client)
            raise NotAuthenticated("unsupported Authorization scheme: use Bearer or Basic")
        if presented.cookie:
            return await self._cookie(presented)
        if presented.query_token is not None and presented.method in SAFE_METHODS:
            secret = keys.parse(presented.query_token)
            if secret is None or secret.kind is not keys.Kind.SHARE:
                raise NotAuthenticated("the token is not a valid share token")
            return await self.shares.authenticate(secret)
        raise NotAuthenticated(REQUIRED)

    async def _bearer(self, token: str) -> Principal:
        secret = keys.parse(token)
        if secret is None:
            raise NotAuthenticated("the bearer token is not valid")
        if secret.kind is keys.Kind.API_KEY:
            return await self.keys.authenticate(secret)
        if secret.kind is keys.Kind.SHARE:
            return await self.shares.authenticate(secret)
        principal, _ = await self.users.authenticate_login(secret)
        return principal

    async def _basic(self, value: str, client: str | None) -> Principal:
        try:
            username, colon, password = b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            raise NotAuthenticated("the Basic credentials are malformed") from None
        if not colon or not username:
            raise NotAuthenticated("the Basic credentials are malformed")
        secret = keys.parse(password)
        if secret is not None and secret.kind is keys.Kind.API_KEY:
            return await self.keys.authenticate(secret, username)
        return user_principal(await self.users.check_password(username, password, client, basic=True))

    async def _cookie(self, presented: Presented) -> Principal:
        secret = keys.parse(presented.cookie or "")
        if secret is None or secret.kind is not keys.Kind.LOGIN:
            raise NotAuthenticated("the session cookie is not valid: log in again")
        principal, csrf_hash = await self.users.authenticate_login(secret)
        if presented.method not in SAFE_METHODS:
            given = keys.digest(presented.csrf or "")
            if not presented.csrf or not hmac.compare_digest(given.encode(), csrf_hash.encode()):
                raise Forbidden(f"a cookie-authenticated {presented.method} needs the X-CSRF-Token header from login")
        return principal
