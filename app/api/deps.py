"""Dependencies routes declare; everything comes from the app's lifespan state, never globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.services.instances import InstanceService
from app.services.renders import RenderService


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_instances(request: Request) -> InstanceService:
    service: InstanceService = request.app.state.instances
    return service


def get_renders(request: Request) -> RenderService:
    service: RenderService = request.app.state.renders
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
InstancesDep = Annotated[InstanceService, Depends(get_instances)]
RendersDep = Annotated[RenderService, Depends(get_renders)]
