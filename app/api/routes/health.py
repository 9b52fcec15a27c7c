"""Probes for orchestrators: ``/healthz`` (alive), ``/readyz`` (dependencies really work), ``/metrics``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from app.api.deps import PrincipalDep, SettingsDep
from app.api.openapi import error_responses
from app.auth import policy
from app.metrics import scrape
from app.readiness import run_checks

router = APIRouter(tags=["operations"])


class HealthBody(BaseModel):
    status: Literal["ok"] = Field(examples=["ok"])


class ReadinessBody(BaseModel):
    status: Literal["ok", "unavailable"] = Field(examples=["ok"])
    checks: dict[str, str] = Field(
        description="Each dependency checked: `ok`, or `failed: <reason>`.",
        examples=[{"index": "ok", "storage": "ok"}],
    )


NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ReadinessBody,
        "description": "A dependency failed; `checks` names it.",
        "content": {
            "application/json": {
                "example": {
                    "status": "unavailable",
                    "checks": {
                        "index": "ok",
                        "storage": "failed: storage folder is not writable: Read-only file system",
                    },
                }
            }
        },
    }
}


@router.get("/healthz", summary="Liveness probe", response_model=HealthBody)
async def healthz() -> HealthBody:
    """200 while the process can answer HTTP; checks no dependency (orchestrators restart it when this fails)."""
    return HealthBody(status="ok")


@router.get("/readyz", summary="Readiness probe", response_model=ReadinessBody, responses=NOT_READY)
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    """200 when every dependency answers: the storage folder takes a real write + fsync + delete, and
    each check registered in ``app.state.readiness_checks`` (the index) answers within
    ``LIGHTBOX_READINESS_TIMEOUT``; otherwise 503 naming what failed (load balancers stop sending traffic)."""
    checks = await run_checks(request.app.state.readiness_checks, settings.readiness_timeout)
    ready = all(result == "ok" for result in checks.values())
    body = ReadinessBody(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format (summed over all worker processes).",
            "content": {
                CONTENT_TYPE_LATEST: {
                    "example": 'lightbox_http_requests_total{method="GET",route="/healthz",status="200"} 3.0\n'
                }
            },
        },
        **error_responses(401, 403),
    },
)
async def metrics(request: Request, settings: SettingsDep, principal: PrincipalDep) -> Response:
    """Requests, uploads, renders, caches and index size, for Prometheus to scrape (with auth: an
    administrator or a key with scope ``admin``)."""
    policy.require_admin(principal)
    return Response(await scrape(request.app.state, settings.readiness_timeout), media_type=CONTENT_TYPE_LATEST)
