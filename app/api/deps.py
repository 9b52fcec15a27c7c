"""Dependencies routes declare; everything comes from the app's lifespan state, never globals.

They are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in a worker
thread, and four thread hops per request cost more than the rest of a cached tag lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth.principals import LOCAL_ADMIN, Principal
from app.config import Settings
from app.index.base import InstanceIndex
from app.services.audit import AuditService
from app.services.instances import InstanceService
from app.services.renders import RenderService


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_instances(request: Request) -> InstanceService:
    service: InstanceService = request.app.state.instances
    return service


async def get_renders(request: Request) -> RenderService:
    service: RenderService = request.app.state.renders
    return service


async def get_audit(request: Request) -> AuditService:
    service: AuditService = request.app.state.audit
    return service


async def get_index(request: Request) -> InstanceIndex:
    index: InstanceIndex = request.app.state.index
    return index


async def get_principal() -> Principal:
    """Single-user mode: every caller is the local administrator (authentication comes later)."""
    return LOCAL_ADMIN


SettingsDep = Annotated[Settings, Depends(get_settings)]
InstancesDep = Annotated[InstanceService, Depends(get_instances)]
RendersDep = Annotated[RenderService, Depends(get_renders)]
AuditDep = Annotated[AuditService, Depends(get_audit)]
IndexDep = Annotated[InstanceIndex, Depends(get_index)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
