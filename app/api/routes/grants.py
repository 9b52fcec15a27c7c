"""``/grants``: let another user read (or change) your instances of one study."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from app.api.access_schemas import GrantBody, GrantList, GrantRequest, iso
from app.api.deps import GrantsDep, PrincipalDep
from app.api.openapi import error_responses
from app.index.access import GrantRow
from app.services.grants import Access

router = APIRouter(tags=["access"])


def _body(row: GrantRow) -> GrantBody:
    return GrantBody(
        id=row.id,
        study_instance_uid=row.study_instance_uid,
        grantor=row.grantor,
        username=row.grantee,
        access=row.access,
        created_at=iso(row.created_at_us),
    )


@router.post(
    "/grants",
    status_code=201,
    summary="Grant a user access to a study",
    response_model=GrantBody,
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def create_grant(body: GrantRequest, principal: PrincipalDep, grants: GrantsDep) -> GrantBody:
    """By the study's owner (covers their instances of it) or an administrator (covers all of them)."""
    return _body(await grants.create(principal, body.study_instance_uid, body.username, Access(body.access)))


@router.get(
    "/grants", summary="Grants you gave or hold", response_model=GrantList, responses=error_responses(401, 403, 503)
)
async def list_grants(principal: PrincipalDep, grants: GrantsDep) -> GrantList:
    return GrantList(data=[_body(row) for row in await grants.list(principal)])


@router.delete(
    "/grants/{grant_id}", status_code=204, summary="Revoke a grant", responses=error_responses(401, 403, 404, 503)
)
async def revoke_grant(
    principal: PrincipalDep, grants: GrantsDep, grant_id: int = Path(ge=1, le=2**62, description="The grant's id.")
) -> Response:
    await grants.revoke(principal, grant_id)
    return Response(status_code=204)
