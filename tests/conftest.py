"""Shared fixtures: real app per test (tmp storage), an httpx client over ASGI, sample files."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import settings as hypothesis_settings
from pydicom.data import get_testdata_file

from app.config import Settings
from app.main import create_app

# CI runs the property tests on a fixed seed (a landing must not depend on a lucky draw);
# locally they explore new examples on every run.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def sample(name: str) -> Path:
    """A file bundled with pydicom or pydicom-data (never ../shared)."""
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is not installed"
    return Path(path)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(storage_dir=tmp_path / "storage")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
        yield http


async def upload(client: httpx.AsyncClient, path: Path, filename: str | None = None) -> str:
    """Upload ``path`` and return the stored name."""
    response = await client.post("/upload", files={"file": (filename or path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    name: str = response.json()["name"]
    return name
