"""OHIF Viewer 3.12.10 (its npm ``dist/``, served on its own origin) in Debian's headless Chromium against a real
``lightbox`` on another origin, with the README's ``app-config.js`` (``examples/ohif/app-config.js``).

Run 1, cross-origin with CORS: the study list shows every uploaded study, and each study opened in the viewer
draws a picture (the cornerstone canvas is sampled: bright pixels, many grey levels). Run 2, auth on: OHIF
opened with ``?token=<share token>`` sends it as ``Authorization: Bearer``; the shared study renders, a study
that is not shared shows nothing, and the study list (reached inside the app, token kept) lists only the shared
one. Screenshots go to a temporary folder (printed); with ``KEEP_SHOTS=1`` they are copied to ``SHOTS``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, Response, ViewportSize, sync_playwright
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.conftest import sample
from tests.e2e.ohif_site import app_config, ohif_site
from tests.e2e.server import RunningServer, run_server
from tests.e2e.test_docs_browser import CHROMIUM, CHROMIUM_ARGS

#: One study each: modalities, colour and the transfer syntaxes OHIF decodes itself (frames come as stored).
FILES = {
    "CT_small.dcm": "CT, Explicit VR Little Endian",
    "MR_small.dcm": "MR, 64 x 64",
    "examples_palette.dcm": "US, palette colour (LUTs as bulk data)",
    "US1_J2KR.dcm": "US, colour JPEG 2000 lossless",
    "emri_small_jpeg_2k_lossless.dcm": "MR, 10 frames of JPEG 2000",
    "examples_ybr_color.dcm": "US, 30 frames of colour JPEG baseline",
}
PASSWORD = "correct-horse-battery-staple"
SHOTS = Path("/tmp/lightbox-shots/ohif")
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
#: OHIF's onboarding tour and investigational-use banner, dismissed as a returning user has (they cover the image)
DISMISSED = """localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));
sessionStorage.setItem('investigationalUseDialog', 'hidden');"""
BRIGHT = 40  # some canvas pixel above this (of 255) ...
LEVELS = 16  # ... and at least this many grey levels: a picture, not a blank or uniform canvas
CANVAS_STATS = """() => {
    const canvas = document.querySelector('canvas.cornerstone-canvas');
    if (!canvas || !canvas.width) return [0, 0];
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    let brightest = 0;
    for (let i = 0; i < data.length; i += 4) {
        const value = Math.max(data[i], data[i + 1], data[i + 2]);
        brightest = Math.max(brightest, value);
        seen.add(value);
    }
    return [brightest, seen.size];
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "install Debian's chromium (scripts/test does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("ohif-screenshots")
    print(f"OHIF screenshots in {folder}")
    yield folder
    if os.environ.get("KEEP_SHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        for shot in folder.glob("*.png"):
            shutil.copy(shot, SHOTS / shot.name)


def studies(folder: Path) -> list[Dataset]:
    """Each file as its own study (fresh UIDs), its patient ID ``OHIF<n>`` shown in the study list."""
    made: list[Dataset] = []
    for number, name in enumerate(FILES):
        ds = dcmread(sample(name))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = f"OHIF{number}"
        ds.PatientName = f"Ohif^{Path(name).stem}"
        ds.save_as(folder / name)
        made.append(ds)
    return made


def upload(server: RunningServer, folder: Path, auth: httpx.Auth | None = None) -> None:
    files = [("file", (name, (folder / name).read_bytes(), "application/dicom")) for name in FILES]
    answer = httpx.post(f"{server.url}/upload", files=files, auth=auth, timeout=60)
    assert answer.status_code == 201, answer.text


class Traffic:
    """What the page asked of Lightbox: each answer's status and path, and the Authorization it carried."""

    def __init__(self, page: Page, server: RunningServer) -> None:
        self.prefix = server.url + "/"
        self.answers: list[tuple[int, str]] = []
        self.authorizations: list[str | None] = []
        page.on("response", self._response)
        page.on("request", self._request)

    def _response(self, response: Response) -> None:
        if response.url.startswith(self.prefix):
            self.answers.append((response.status, response.url.removeprefix(self.prefix).split("?")[0]))

    def _request(self, request: Request) -> None:
        if request.url.startswith(self.prefix) and request.method != "OPTIONS":
            self.authorizations.append(request.headers.get("authorization"))

    def failures(self) -> list[tuple[int, str]]:
        return [(status, path) for status, path in self.answers if status >= 400]


def open_page(context: BrowserContext, server: RunningServer) -> tuple[Page, Traffic, list[str]]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, Traffic(page, server), errors


def canvas_stats(page: Page, seconds: float = 30) -> tuple[int, int]:
    """The brightest value and the number of distinct levels on the viewport's canvas, once it shows a picture
    (or what it shows after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        brightest, levels = page.evaluate(CANVAS_STATS)
        if (brightest > BRIGHT and levels >= LEVELS) or time.monotonic() > deadline:
            return brightest, levels
        page.wait_for_timeout(250)


def wait_for_thumbnail(page: Page) -> None:
    """The study browser's thumbnail, which OHIF fetches from Lightbox's ``/thumbnail`` (``thumbnailRendering:
    'thumbnail'``) and shows as a blob image, has loaded."""
    loaded = "() => [...document.querySelectorAll('img[src^=\"blob:\"]')].some(i => i.complete && i.naturalWidth > 0)"
    page.wait_for_function(loaded, timeout=30_000)


@pytest.mark.slow
def test_cross_origin_study_list_and_every_study_renders(
    browser: Browser, shots: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("ohif-cors")
    made = studies(work)
    with ohif_site() as site, run_server(work, env={"LIGHTBOX_CORS_ORIGINS": site.origin}) as server:
        site.configure(app_config(f"{server.url}/dicom-web"))
        upload(server, work)
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(DISMISSED)
        page, traffic, errors = open_page(context, server)
        page.goto(site.origin + "/")
        for ds in made:
            page.get_by_text(str(ds.PatientID), exact=True).wait_for(timeout=30_000)
        page.screenshot(path=str(shots / "cors-study-list.png"))
        assert traffic.failures() == [] and errors == []
        page.close()

        for ds in made:
            page, traffic, errors = open_page(context, server)
            page.goto(f"{site.origin}/viewer?StudyInstanceUIDs={ds.StudyInstanceUID}")
            brightest, levels = canvas_stats(page)
            wait_for_thumbnail(page)
            name = Path(str(ds.PatientName).split("^")[1]).name
            page.screenshot(path=str(shots / f"cors-{name}.png"))
            assert brightest > BRIGHT and levels >= LEVELS, (name, brightest, levels, traffic.answers)
            assert traffic.failures() == [], name
            assert any(path.endswith("/metadata") for _, path in traffic.answers), name
            assert any(path.endswith("/thumbnail") for _, path in traffic.answers), name
            page.close()
        context.close()


@pytest.mark.slow
def test_share_token_in_the_url_shows_the_shared_study_and_nothing_else(
    browser: Browser, shots: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("ohif-token")
    shared, hidden, *_ = studies(work)
    settings = {"LIGHTBOX_AUTH_REQUIRED": "true", "LIGHTBOX_ADMIN_PASSWORD": PASSWORD}
    with ohif_site() as site, run_server(work, env={"LIGHTBOX_CORS_ORIGINS": site.origin, **settings}) as server:
        site.configure(app_config(f"{server.url}/dicom-web"))
        admin = httpx.BasicAuth("admin", PASSWORD)
        upload(server, work, admin)
        answer = httpx.post(
            f"{server.url}/shares", json={"study_instance_uid": str(shared.StudyInstanceUID)}, auth=admin
        )
        assert answer.status_code == 201, answer.text
        token = answer.json()["token"]
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(DISMISSED)

        page, traffic, errors = open_page(context, server)
        page.goto(f"{site.origin}/viewer?StudyInstanceUIDs={shared.StudyInstanceUID}&token={token}")
        brightest, levels = canvas_stats(page)
        wait_for_thumbnail(page)
        page.screenshot(path=str(shots / "token-shared-study.png"))
        assert brightest > BRIGHT and levels >= LEVELS, (brightest, levels, traffic.answers)
        assert "token=" not in page.url  # OHIF moved it into its authentication service
        assert traffic.authorizations and set(traffic.authorizations) == {f"Bearer {token}"}
        assert traffic.failures() == []

        page.goto(f"{site.origin}/viewer?StudyInstanceUIDs={hidden.StudyInstanceUID}&token={token}")
        page.get_by_text("One or more of the requested studies are not available").wait_for(timeout=30_000)
        page.screenshot(path=str(shots / "token-other-study.png"))
        assert page.locator("canvas.cornerstone-canvas").count() == 0

        # OHIF keeps the token for the session: its study list, reached by the link, lists the shared study only
        page.get_by_role("link", name="study list").click()
        page.get_by_text(str(shared.PatientID), exact=True).wait_for(timeout=30_000)
        page.screenshot(path=str(shots / "token-study-list.png"))
        assert page.get_by_text(str(hidden.PatientID), exact=True).count() == 0
        assert set(traffic.authorizations) == {f"Bearer {token}"} and traffic.failures() == []
        assert errors == []
        page.close()
        context.close()
