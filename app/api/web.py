"""The browser app (issue 14): static files from ``app/web`` under ``/ui/``, and ``/`` redirecting there.

The app is a client of the public API only (``/auth``, ``/upload``, QIDO-RS, rendered WADO-RS,
``/shares``), so it is served like any other static asset; what it adds is the headers its pages
need: a Content-Security-Policy that allows only this origin's own scripts and styles (no inline
script, no CDN; images also from ``blob:`` URLs, which is how renders fetched with a bearer token
are shown), ``Referrer-Policy: no-referrer`` so a share link's fragment never travels further, and
no framing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
MOUNT = "/ui"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # the assets are not content-hashed yet: revalidate (cheap, ETag) so a new release is seen at once
    "Cache-Control": "no-cache",
}


class WebAppFiles(StaticFiles):
    """Starlette's safe static lookup (no path escapes the folder) with the app's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def install_web(app: FastAPI) -> None:
    """Serve the browser app at ``/ui/``; ``/`` redirects there (the original API paths are unchanged)."""
    app.mount(MOUNT, WebAppFiles(directory=WEB_ROOT, html=True), name="web")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{MOUNT}/", status_code=307, headers={"Referrer-Policy": "no-referrer"})
