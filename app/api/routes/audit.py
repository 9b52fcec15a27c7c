"""``GET /admin/audit``: the audit trail for administrators (issue 10), filtered and paged, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import NO_NUL, AuditDep, PrincipalDep
from app.api.openapi import error_responses
from app.index.audit import AuditQuery
from app.services.audit import Action
from app.services.audit_view import as_dict, time_us

router = APIRouter(tags=["administration"])

MAX_LIMIT = 1000


class AuditEntry(BaseModel):
    time: str = Field(description="When, ISO 8601 UTC.", examples=["2026-12-02T06:47:31.123456Z"])
    actor: str = Field(description="Who: the user, key owner or share.", examples=["local"])
    actor_type: str = Field(description="user, api_key, share or anonymous.", examples=["user"])
    action: str = Field(description="What (PS3.15 A.5.3 events where they fit).", examples=["tag"])
    outcome: str = Field(description="success, failure or denied.", examples=["success"])
    reason: str | None = Field(None, description="The error kind of a failure or denial.", examples=[None])
    study_instance_uid: str | None = Field(None, examples=["1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"])
    name: str | None = Field(None, description="The stored name, when there is one.")
    client: str | None = Field(None, description="The caller's network address.", examples=["127.0.0.1"])
    request_id: str | None = Field(None, description="X-Request-ID of the request, as in the logs.")
    detail: dict[str, Any] | None = Field(
        None, description="What the caller asked: a list's query, the tag looked up, the file name sent."
    )


_EXAMPLE = {
    "time": "2026-12-02T06:47:31.123456Z",
    "actor": "local",
    "actor_type": "user",
    "action": "tag",
    "outcome": "success",
    "reason": None,
    "study_instance_uid": "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
    "name": "0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-IM000001.dcm",
    "client": "127.0.0.1",
    "request_id": "6f1c0e1b0a8d4c3e9f2a7b5d4c3e2f1a",
    "detail": {"tag": "(0008,0080)"},
}


class AuditBody(BaseModel):
    data: list[AuditEntry] = Field(description="Records, newest first.", examples=[[_EXAMPLE]])
    total: int = Field(description="Records matching the filters (all pages).", examples=[1])


@router.get(
    "/admin/audit",
    summary="Read the audit trail (administrators only)",
    response_model=AuditBody,
    responses=error_responses(400, 403, 503),
)
async def read_audit(
    audit: AuditDep,
    principal: PrincipalDep,
    since: Annotated[datetime | None, Query(description="From this time on (ISO 8601; UTC when no zone).")] = None,
    until: Annotated[datetime | None, Query(description="Before this time (ISO 8601; UTC when no zone).")] = None,
    actor: Annotated[str | None, Query(max_length=128, pattern=NO_NUL, description="Exactly this actor.")] = None,
    study_instance_uid: Annotated[
        str | None, Query(max_length=256, pattern=NO_NUL, description="Exactly this study.")
    ] = None,
    action: Annotated[Action | None, Query(description="Exactly this action.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (at most 1000).")] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31, description="Records skipped (newest first).")] = 0,
) -> JSONResponse:
    """Who saw or changed what: one record per access to patient data and per security event."""
    query = AuditQuery(
        since_us=time_us(since) if since else None,
        until_us=time_us(until) if until else None,
        actor=actor or None,
        study_instance_uid=study_instance_uid or None,
        action=action.value if action else None,
        limit=limit,
        offset=offset,
    )
    page = await audit.search(principal, query)
    return JSONResponse({"data": [as_dict(record) for record in page.records], "total": page.total})
