"""CORS for browser viewers on another origin: exact origins only, Authorization allowed, links exposed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app.config import Settings

pytestmark = pytest.mark.anyio

VIEWER = "https://viewer.example.org"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(storage_dir=tmp_path / "storage", cors_origins=f"{VIEWER}/, http://localhost:3000")


async def test_preflight_allows_the_configured_origin_with_authorization(client: httpx.AsyncClient) -> None:
    headers = {
        "Origin": VIEWER,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    preflight = await client.options("/dicom-web/studies", headers=headers)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == VIEWER
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    search = await client.get("/dicom-web/studies", headers={"Origin": VIEWER})
    assert search.headers["access-control-allow-origin"] == VIEWER
    assert "content-location" in search.headers["access-control-expose-headers"].lower()


async def test_other_origins_get_no_grant(client: httpx.AsyncClient) -> None:
    answer = await client.get("/dicom-web/studies", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_a_wildcard_origin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exact origins"):
        Settings(storage_dir=tmp_path, cors_origins="*")
