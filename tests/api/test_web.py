"""The browser app's static files over ASGI: where they are, the headers they carry, no inline script."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.api.web import WEB_ROOT

pytestmark = pytest.mark.anyio


async def test_root_redirects_to_the_app(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"


async def test_the_app_page_carries_a_strict_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "http" not in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert 'data-testid="upload-input"' in response.text


@pytest.mark.parametrize("asset", sorted(p.name for p in WEB_ROOT.iterdir() if p.suffix in {".js", ".css"}))
async def test_every_asset_is_served_with_its_type(client: httpx.AsyncClient, asset: str) -> None:
    response = await client.get(f"/ui/{asset}")
    assert response.status_code == 200
    kind = "javascript" if asset.endswith(".js") else "text/css"
    assert kind in response.headers["content-type"]
    assert response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/ui/../app/main.py", "/ui/%2e%2e/config.py", "/ui/missing.js", "/ui/..%2fmain.py"])
async def test_nothing_outside_the_folder_is_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "Settings" not in response.text


async def test_the_original_api_paths_are_unchanged(client: httpx.AsyncClient) -> None:
    assert (await client.get("/dicomFile/nothing.dcm?tag=(0010,0010)")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200


def test_no_inline_script_style_or_remote_origin_in_the_app() -> None:
    """The CSP would block them; this keeps them out of the source too (and every request on the origin)."""
    for path in WEB_ROOT.iterdir():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".html":
            assert re.findall(r"<script(?![^>]*\bsrc=)", text) == [], path
            assert re.findall(r"\son[a-z]+=", text) == [], path
            assert "style=" not in text, path
        assert not re.search(r"https?://|['\"(]//", text), path  # no absolute or protocol-relative URL
        assert "localStorage" not in text, path


def test_the_package_ships_the_app() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"app" = ["web/*.html", "web/*.js", "web/*.css"]' in pyproject
    assert {p.suffix for p in WEB_ROOT.iterdir()} <= {".html", ".js", ".css"}
