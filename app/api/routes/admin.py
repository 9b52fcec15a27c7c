"""``/admin/users``: accounts, for administrators only (the service checks it)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from app.api.access_schemas import UserBody, UserChange, UserList, UserRequest, iso
from app.api.deps import PrincipalDep, UsersDep
from app.api.openapi import error_responses
from app.auth.principals import Role
from app.index.access import UserRow

router = APIRouter(tags=["access"])
UsernameParam = Path(max_length=128, description="The user name.")


def _body(user: UserRow, password: str | None = None) -> UserBody:
    return UserBody(
        username=user.username,
        role=user.role,
        disabled=user.disabled,
        created_at=iso(user.created_at_us),
        password=password,
    )


@router.post(
    "/admin/users",
    status_code=201,
    summary="Add a user",
    response_model=UserBody,
    responses=error_responses(400, 401, 403, 409, 503),
)
async def add_user(body: UserRequest, principal: PrincipalDep, users: UsersDep) -> UserBody:
    """Without a password one is generated and returned once, in ``password``."""
    user, password = await users.add(principal, body.username, body.password, Role(body.role))
    return _body(user, password if body.password is None else None)


@router.get("/admin/users", summary="List users", response_model=UserList, responses=error_responses(401, 403, 503))
async def list_users(principal: PrincipalDep, users: UsersDep) -> UserList:
    return UserList(data=[_body(user) for user in await users.list(principal)])


@router.patch(
    "/admin/users/{username}",
    summary="Change a user's role, password or disabled flag",
    response_model=UserBody,
    responses=error_responses(400, 401, 403, 404, 503),
)
async def change_user(
    body: UserChange, principal: PrincipalDep, users: UsersDep, username: str = UsernameParam
) -> UserBody:
    """Disabling a user or changing their password ends their logins at once."""
    role = Role(body.role) if body.role else None
    return _body(await users.change(principal, username, role, body.disabled, body.password))


@router.delete(
    "/admin/users/{username}",
    status_code=204,
    summary="Delete a user",
    responses=error_responses(400, 401, 403, 404, 503),
)
async def delete_user(principal: PrincipalDep, users: UsersDep, username: str = UsernameParam) -> Response:
    """Their logins, keys, grants and shares go too; their files stay, visible to administrators."""
    await users.delete(principal, username)
    return Response(status_code=204)
