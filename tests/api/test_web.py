"""The browser app's static files over ASGI: where they are, the headers they carry, no inline script."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest

from app.api.web import WEB_ROOT, WebAssets

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


def referenced(page: str) -> list[str]:
    """Every script and style sheet the page loads: its links and the targets of its import map."""
    linked = re.findall(r'\b(?:href|src)="([^"#]+\.(?:js|css))"', page)
    (import_map,) = re.findall(r'<script type="importmap">(.*?)</script>', page, re.S)
    return sorted({*linked, *(target.removeprefix("./") for target in json.loads(import_map)["imports"].values())})


async def test_every_asset_the_page_loads_is_hashed_and_immutable(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/")
    assert page.headers["cache-control"] == "no-cache"
    assets = referenced(page.text)
    plain = {p.name for p in WEB_ROOT.iterdir() if p.suffix in {".js", ".css"}}
    assert {re.sub(r"\.[0-9a-f]{16}\.", ".", name) for name in assets} == plain  # all of them, each hashed
    for name in assets:
        response = await client.get(f"/ui/{name}")
        assert response.status_code == 200, name
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        source = WEB_ROOT / re.sub(r"\.[0-9a-f]{16}\.", ".", name)
        assert response.content == source.read_bytes()
        assert hashlib.sha256(response.content).hexdigest().startswith(name.split(".")[1])
    again = await client.get("/ui/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304


async def test_the_policy_allows_the_import_map_by_its_hash_and_nothing_else_inline(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/index.html")
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page.text, re.S)
    assert len(inline) == 1 and page.text.index("importmap") < page.text.index('<script type="module"')
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    hashes = re.findall(r"'sha256-([^']+)'", page.headers["content-security-policy"])
    assert hashes == [digest]


def test_a_changed_file_changes_its_url_and_only_its(tmp_path: Path) -> None:
    root = tmp_path / "web"
    shutil.copytree(WEB_ROOT, root)
    before = WebAssets(root)
    with (root / "viewer.js").open("a") as viewer:
        viewer.write("// changed\n")
    after = WebAssets(root)
    changed = {plain for plain in before.names if before.names[plain] != after.names[plain]}
    assert changed == {"viewer.js"}
    assert before.names["viewer.js"] in before.page.decode() and after.names["viewer.js"] in after.page.decode()
    assert before.names["viewer.js"] not in after.page.decode()
    assert before.headers["Content-Security-Policy"] != after.headers["Content-Security-Policy"]  # the map changed


async def test_plain_names_still_answer_and_unknown_hashes_are_404(client: httpx.AsyncClient) -> None:
    plain = await client.get("/ui/main.js")
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
    assert plain.content == (WEB_ROOT / "main.js").read_bytes()
    stale = await client.get("/ui/main.0123456789abcdef.js")
    assert stale.status_code == 404
    assert "immutable" not in stale.headers.get("cache-control", "")


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
