"""``/shares``: revocable, expiring, read-only links to one study."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request, Response

from app.api.access_schemas import NewShareBody, ShareList, ShareRequest, ShareRow, iso
from app.api.deps import PrincipalDep, SharesDep
from app.api.openapi import error_responses

router = APIRouter(tags=["access"])


@router.post(
    "/shares",
    status_code=201,
    summary="Create a share link to a study",
    response_model=NewShareBody,
    responses=error_responses(400, 401, 403, 404, 503),
)
async def create_share(
    body: ShareRequest, request: Request, principal: PrincipalDep, shares: SharesDep
) -> NewShareBody:
    """The token reads the study (list, tags, metadata, renders, downloads) until it expires or is revoked."""
    new = await shares.create(principal, body.study_instance_uid, body.expires_in)
    query = urlencode({"StudyInstanceUID": body.study_instance_uid, "token": new.token})
    url = f"{str(request.base_url).rstrip('/')}/dicomFile?{query}"
    return NewShareBody(id=new.row.id, token=new.token, url=url, expires_at=iso(new.row.expires_at_us))


@router.get("/shares", summary="Your share links", response_model=ShareList, responses=error_responses(401, 403, 503))
async def list_shares(principal: PrincipalDep, shares: SharesDep) -> ShareList:
    rows = await shares.list(principal)
    return ShareList(
        data=[
            ShareRow(
                id=row.id,
                study_instance_uid=row.study_instance_uid,
                creator=row.creator,
                created_at=iso(row.created_at_us),
                expires_at=iso(row.expires_at_us),
            )
            for row in rows
        ]
    )


@router.delete(
    "/shares/{share_id}", status_code=204, summary="Revoke a share link", responses=error_responses(401, 403, 404, 503)
)
async def revoke_share(
    principal: PrincipalDep, shares: SharesDep, share_id: str = Path(max_length=32, description="The share's id.")
) -> Response:
    """The token stops working on the very next request."""
    await shares.revoke(principal, share_id)
    return Response(status_code=204)
