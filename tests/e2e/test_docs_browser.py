"""Swagger UI at /docs in a real headless Chromium (Debian's), with every request kept on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Route, sync_playwright

from tests.e2e.process import Server, lightbox

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (scripts/debian-packages.txt), never a downloaded build
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with lightbox(tmp_path_factory.mktemp("docs")) as running:
        yield running


def test_swagger_ui_renders_every_operation_offline(server: Server, tmp_path: Path) -> None:
    assert CHROMIUM.exists(), "install Debian's chromium (scripts/test does)"
    local = f"http://127.0.0.1:{server.port}/"
    requested: list[str] = []
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if url.startswith(local):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.route("**/*", only_local)
            page.goto(server.url + "/docs", wait_until="networkidle")
            page.wait_for_selector(".opblock-summary-path", timeout=15_000)
            paths = {p.inner_text().replace("\u200b", "") for p in page.query_selector_all(".opblock-summary-path")}
            summaries = {s.inner_text() for s in page.query_selector_all(".opblock-summary-description")}
            page.click("#operations-default-upload_upload_post .opblock-summary")
            page.wait_for_selector("#operations-default-upload_upload_post .responses-table", timeout=10_000)
            upload_panel = page.inner_text("#operations-default-upload_upload_post")
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        finally:
            browser.close()

    assert {"/upload", "/dicomFile/{name}", "/healthz", "/readyz", "/metrics"} <= paths
    assert {
        "Upload DICOM files (one, several, or ZIP archives)",
        "Liveness probe",
        "Readiness probe",
        "Prometheus metrics",
    } <= summaries
    assert "413" in upload_panel and "The upload is larger than LIGHTBOX_MAX_UPLOAD_BYTES." in upload_panel
    assert "Unable to render" not in upload_panel
    assert blocked == []
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested)
    assert any(url.endswith("/openapi.json") for url in requested)
