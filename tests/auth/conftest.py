"""An app with LIGHTBOX_AUTH_REQUIRED=true (real SQLite, real argon2), and its client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.auth.world import ADMIN_PASSWORD, World, build


@pytest.fixture
def auth_settings(tmp_path: Path) -> Settings:
    return Settings(storage_dir=tmp_path / "storage", auth_required=True, admin_password=ADMIN_PASSWORD)


@pytest.fixture
async def auth_app(auth_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(auth_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def auth_client(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=auth_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
        yield http


@pytest.fixture
async def world(auth_client: httpx.AsyncClient) -> World:
    return await build(auth_client)
