"""``/auth``: log in (JSON or form, so Swagger's Authorize button works), log out, who am I, API keys."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from app.api.access_schemas import KeyList, KeyRequest, KeyRow, LoginBody, MeBody, NewKeyBody, iso
from app.api.deps import KeysDep, PrincipalDep, SettingsDep, UsersDep
from app.api.openapi import error_responses
from app.auth.credentials import SESSION_COOKIE
from app.auth.principals import ActorType, Scope
from app.errors import InvalidRequest

router = APIRouter(tags=["access"])

MAX_LOGIN_BODY = 8 * 1024
LOGIN_FIELDS = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
}


async def _login_fields(request: Request) -> tuple[str, str]:
    """``username`` and ``password`` from a JSON object or an urlencoded/multipart form (OAuth2 password flow)."""
    if int(request.headers.get("content-length") or 0) > MAX_LOGIN_BODY:
        raise InvalidRequest("the login body is too large")
    content_type = request.headers.get("content-type", "")
    fields: dict[str, Any]
    if content_type.startswith("application/json"):
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BODY:
                raise InvalidRequest("the login body is too large")
        try:
            fields = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("the login body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise InvalidRequest("the login body must be a JSON object")
    else:
        async with request.form(max_files=0, max_fields=10) as form:
            fields = {key: form.get(key) for key in ("username", "password")}
    username, password = fields.get("username"), fields.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or len(password) > 1024:
        raise InvalidRequest("username and password are required")
    return username, password


@router.post(
    "/auth/login",
    summary="Log in: a bearer token, a session cookie and its CSRF token",
    response_model=LoginBody,
    responses=error_responses(400, 401, 429, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": LOGIN_FIELDS},
                "application/x-www-form-urlencoded": {"schema": LOGIN_FIELDS},
            },
        }
    },
)
async def login(request: Request, users: UsersDep, settings: SettingsDep) -> JSONResponse:
    """Failed logins answer 401 and are rate limited per user name and client address (429 + Retry-After)."""
    username, password = await _login_fields(request)
    client = request.client.host if request.client else None
    done = await users.login(username, password, client)
    body = LoginBody(
        access_token=done.token, token_type="bearer", expires_in=done.expires_in, csrf_token=done.csrf_token
    )
    response = JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store"})
    response.set_cookie(
        SESSION_COOKIE,
        done.token,
        max_age=settings.session_seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post(
    "/auth/logout",
    status_code=204,
    summary="Log out: the login token stops working",
    responses=error_responses(401, 503),
)
async def logout(principal: PrincipalDep, users: UsersDep) -> Response:
    await users.logout(principal)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/auth/me", summary="Who the credentials name", response_model=MeBody, responses=error_responses(401, 503))
async def me(principal: PrincipalDep) -> MeBody:
    if principal.actor_type is ActorType.SHARE:
        return MeBody(username=principal.name, role="share")
    return MeBody(username=principal.name, role="admin" if principal.is_admin else "user")


@router.post(
    "/auth/keys",
    status_code=201,
    summary="Create an API key (shown once)",
    response_model=NewKeyBody,
    responses=error_responses(400, 401, 403, 503),
)
async def create_key(body: KeyRequest, principal: PrincipalDep, api_keys: KeysDep) -> NewKeyBody:
    """``lbx_<id>_<secret>``: use as ``Authorization: Bearer`` or as the password of Basic credentials."""
    new = await api_keys.create(principal, body.name, Scope.parse(body.scope), body.expires_in_days)
    return NewKeyBody(id=new.id, key=new.key, scope=new.scope.label, expires_at=iso(new.expires_at_us))


@router.get(
    "/auth/keys",
    summary="The caller's API keys (never their secrets)",
    response_model=KeyList,
    responses=error_responses(401, 403, 503),
)
async def list_keys(principal: PrincipalDep, api_keys: KeysDep) -> KeyList:
    rows = await api_keys.list(principal)
    return KeyList(
        data=[
            KeyRow(
                id=row.id,
                name=row.name or "",
                scope=row.scope or "read",
                created_at=iso(row.created_at_us),
                expires_at=iso(row.expires_at_us),
                last_used_at=iso(row.last_used_at_us),
            )
            for row in rows
        ]
    )


@router.delete(
    "/auth/keys/{key_id}", status_code=204, summary="Revoke an API key", responses=error_responses(401, 403, 404, 503)
)
async def revoke_key(
    principal: PrincipalDep, api_keys: KeysDep, key_id: str = Path(max_length=32, description="The key's id.")
) -> Response:
    await api_keys.revoke(principal, key_id)
    return Response(status_code=204)
