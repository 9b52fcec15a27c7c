"""Liveness: ``GET /healthz`` answers while the process serves (no dependency checks)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["operations"])


class HealthBody(BaseModel):
    status: str


@router.get("/healthz", summary="Liveness probe", response_model=HealthBody)
async def healthz() -> HealthBody:
    """200 while the process can answer HTTP; orchestrators restart it when this fails."""
    return HealthBody(status="ok")
