"""For ``uvicorn tests.e2e.broken_app:app``: the real app, built from the environment as ``app.main:app``
is, plus one route that fails as a bug would, quoting the request's URL and headers in its exception.

It lets a test check that an unexpected error's traceback (logged by our error handler and again by
uvicorn) never carries a credential. Nothing imports it but uvicorn.
"""

from __future__ import annotations

from fastapi import Request

from app.main import create_app

app = create_app()


@app.get("/broken")
async def broken(request: Request) -> None:
    raise RuntimeError(f"bug while serving {request.url} with headers {request.headers.items()}")
