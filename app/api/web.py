"""The browser app (issue 14): static files from ``app/web`` under ``/ui/``, and ``/`` redirecting there.

The app is a client of the public API only (``/auth``, ``/upload``, QIDO-RS, rendered WADO-RS,
``/shares``), so it is served like any other static asset; what it adds is the headers its pages
need: a Content-Security-Policy that allows only this origin's own scripts and styles (no inline
script but the import map below, by its hash; no CDN; images also from ``blob:`` URLs, which is how
renders fetched with a bearer token are shown), ``Referrer-Policy: no-referrer`` so a share link's
fragment never travels further, and no framing.

Caching without a build step: at start-up :class:`WebAssets` names every script and style sheet by
its content (``viewer.3f2a9c1b0e4d5a67.js``) and serves those names as immutable for a year; the page
(``index.html``, revalidated on every load) links the hashed names and carries an import map sending
each module's plain specifier (``./api.js``) to its hashed name, so the modules stay as written and
a changed file changes only its own URL. The plain names still answer (revalidated), for old pages.
The files are read once, at start-up: restart to serve an edit (``uvicorn --reload`` does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
MOUNT = "/ui"
PAGE = "index.html"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
DIGEST_CHARS = 16  # 64 bits of SHA-256: no two versions of one file collide in practice
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # the page and the plain names: revalidate (cheap, ETag) so a new release is seen at once
_LINKED = re.compile(r'\b(href|src)="([A-Za-z0-9_-]+\.(?:js|css))"')
_FIRST_MODULE = re.compile(r"<script type=\"module\"")


def content_security_policy(*script_hashes: str) -> str:
    """Only this origin's scripts (and inline ones whose SHA-256 is listed: the import map)."""
    scripts = " ".join(["'self'", *(f"'sha256-{digest}'" for digest in script_hashes)])
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def security_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


@dataclass(frozen=True)
class Asset:
    content: bytes
    media_type: str


class WebAssets:
    """The app's files as served: scripts and styles under content-hashed names, and the page linking them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hashed: dict[str, Asset] = {}  # hashed name -> the file as it is on disk
        self.names: dict[str, str] = {}  # plain name -> hashed name
        for path in sorted(root.iterdir()):
            if path.suffix not in MEDIA_TYPES:
                continue
            content = path.read_bytes()
            name = f"{path.stem}.{hashlib.sha256(content).hexdigest()[:DIGEST_CHARS]}{path.suffix}"
            self.hashed[name] = Asset(content, MEDIA_TYPES[path.suffix])
            self.names[path.name] = name
        page, import_map = self._page((root / PAGE).read_text(encoding="utf-8"))
        self.page = page.encode()
        self.page_etag = f'"{hashlib.sha256(self.page).hexdigest()[:DIGEST_CHARS]}"'
        map_hash = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
        self.headers = security_headers(content_security_policy(map_hash))

    def _page(self, html: str) -> tuple[str, str]:
        """``index.html`` linking hashed names, with the import map and module preloads before the first
        module script (an import map must precede every module load); returns it and the map's text."""
        modules = {plain: hashed for plain, hashed in self.names.items() if plain.endswith(".js")}
        import_map = json.dumps({"imports": {f"./{plain}": f"./{hashed}" for plain, hashed in modules.items()}})
        preloads = "".join(f'<link rel="modulepreload" href="{hashed}">\n  ' for hashed in modules.values())
        html = _LINKED.sub(lambda m: f'{m[1]}="{self.names.get(m[2], m[2])}"', html)
        first = _FIRST_MODULE.search(html)
        if first is None:
            raise RuntimeError(f"{PAGE} loads no module script: nothing to put the import map before")
        head = f'<script type="importmap">{import_map}</script>\n  {preloads}'
        return html[: first.start()] + head + html[first.start() :], import_map


class WebAppFiles(StaticFiles):
    """Starlette's safe static lookup (no path escapes the folder), the hashed names from memory, and the
    app's security and caching headers on every answer."""

    def __init__(self, assets: WebAssets) -> None:
        super().__init__(directory=assets.root, html=False)
        self.assets = assets

    async def get_response(self, path: str, scope: Scope) -> Response:
        assets = self.assets
        if path in (".", PAGE):
            headers = {**assets.headers, "Cache-Control": REVALIDATE, "ETag": assets.page_etag}
            if assets.page_etag in _if_none_match(scope):
                return Response(status_code=304, headers=headers)
            return Response(assets.page, media_type="text/html; charset=utf-8", headers=headers)
        asset = assets.hashed.get(path)
        if asset is not None:
            headers = {**assets.headers, "Cache-Control": IMMUTABLE}
            return Response(asset.content, media_type=asset.media_type, headers=headers)
        response = await super().get_response(path, scope)
        response.headers.update({**assets.headers, "Cache-Control": REVALIDATE})
        return response


def _if_none_match(scope: Scope) -> list[str]:
    for key, value in scope.get("headers", []):
        if key == b"if-none-match":
            return [tag.strip().removeprefix("W/") for tag in value.decode("latin-1").split(",")]
    return []


def install_web(app: FastAPI, root: Path = WEB_ROOT) -> None:
    """Serve the browser app at ``/ui/``; ``/`` redirects there (the original API paths are unchanged)."""
    app.mount(MOUNT, WebAppFiles(WebAssets(root)), name="web")

    @app.get("/", include_in_schema=False)
    async def root_redirect() -> RedirectResponse:
        return RedirectResponse(f"{MOUNT}/", status_code=307, headers={"Referrer-Policy": "no-referrer"})
