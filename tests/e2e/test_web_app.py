"""The browser app (/ui/) in Debian's headless Chromium against the real ``lightbox`` with auth required.

One flow, as a person uses it: sign in, upload through the file input, search, open a study, view
and window an image, step frames, read the header, share the study, open the link in a fresh
context (no cookies), revoke it, sign out. Every request stays on 127.0.0.1. Screenshots at 375 and
1440 px are written to the test's temporary folder (its path is printed).
"""

from __future__ import annotations

import base64
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageChops
from playwright.sync_api import Browser, Download, Page, Response, Route, ViewportSize, expect, sync_playwright
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import sample
from tests.e2e.process import Server, lightbox
from tests.e2e.test_docs_browser import CHROMIUM, CHROMIUM_ARGS

PASSWORD = "correct-horse-battery-staple"
FILES = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm")
WIDE: ViewportSize = {"width": 1440, "height": 1000}
PHONE: ViewportSize = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with lightbox(
        tmp_path_factory.mktemp("webapp"), auth_required="true", admin_password=PASSWORD, workers="1"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "install Debian's chromium (scripts/test does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def local_only(page: Page, server: Server, blocked: list[str]) -> None:
    """Abort (and remember) any request that would leave the service's origin."""

    def route(route: Route) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", route)


def shown_image(page: Page) -> Image.Image:
    """The pixels of ``viewer-image`` as the page decoded them (drawn at natural size on a canvas)."""
    encoded = page.evaluate(
        """() => {
            const img = document.querySelector('[data-testid=viewer-image]');
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            canvas.getContext('2d').drawImage(img, 0, 0);
            return canvas.toDataURL('image/png').split(',')[1];
        }"""
    )
    return Image.open(io.BytesIO(base64.b64decode(encoded)))


def zip_members(download: Download) -> dict[str, bytes]:
    """The files of a downloaded ZIP, by member name."""
    with zipfile.ZipFile(download.path()) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def study_zip(name: str) -> dict[str, bytes]:
    """What the ZIP of a one-file study holds: ``<series>/<instance>.dcm``, byte for byte."""
    header = dcmread(sample(name), stop_before_pixels=True)
    return {f"{header.SeriesInstanceUID}/{header.SOPInstanceUID}.dcm": sample(name).read_bytes()}


def watch_assets(page: Page, seen: list[Response]) -> None:
    """Remember every script and style sheet the page loads (to check their names and caching)."""
    page.on("response", lambda r: seen.append(r) if re.search(r"/ui/[^/]+\.(?:js|css)$", r.url) else None)


def check_assets(seen: list[Response]) -> None:
    """Each script and style sheet came under its content-hashed name, cacheable for a year."""
    assert len({r.url for r in seen}) >= 10, [r.url for r in seen]  # the style sheet and every module
    for response in seen:
        assert re.search(r"\.[0-9a-f]{16}\.(?:js|css)$", response.url), response.url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable", response.url


def shots(page: Page, folder: Path, name: str) -> None:
    """The page at 1440 px and at 375 px (phone), full height."""
    for label, size in (("1440", WIDE), ("375", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(300)
        page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(WIDE)


def test_sign_in_upload_find_view_share_and_sign_out(
    server: Server, browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"screenshots in {folder}")
    blocked: list[str] = []
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    local_only(page, server, blocked)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if "Security Policy" in message.text else None)
    assets: list[Response] = []
    watch_assets(page, assets)

    page.goto(server.url + "/")
    assert page.url == server.url + "/ui/"
    expect(page.get_by_test_id("login-submit")).to_be_visible()
    shots(page, folder, "login")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill("wrong password")
    page.get_by_test_id("login-submit").click()
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.locator("#who")).to_have_text("Signed in as admin")
    check_assets(assets)

    not_dicom = folder / "notes.txt"
    not_dicom.write_text("not an image")
    page.get_by_test_id("upload-input").set_input_files([*(sample(f) for f in FILES), not_dicom])
    results = page.get_by_test_id("upload-result")
    expect(results).to_have_count(4)
    expect(page.locator("#upload-summary")).to_have_text("4 of 4 files done, 3 stored", timeout=20_000)
    texts = results.all_inner_texts()
    assert [t.startswith("Stored as ") for t in texts].count(True) == 3, texts
    assert any(t.startswith("Refused: ") for t in texts), texts
    expect(page.get_by_test_id("upload-progress")).to_have_count(4)
    expect(page.get_by_test_id("study-row")).to_have_count(3)
    shots(page, folder, "list")

    page.get_by_test_id("search-input").fill("ct1")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("study-row")).to_have_count(1)
    expect(page.get_by_test_id("study-row")).to_contain_text("CompressedSamples^CT1")

    with page.expect_response(lambda r: "/rendered?" in r.url) as rendered:
        page.get_by_role("button", name="Open the study of CompressedSamples^CT1, 2004-01-19").click()
    expect(page.get_by_test_id("series-row")).to_have_count(1)
    expect(page.get_by_test_id("instance-row")).to_have_count(1)
    expect(page.get_by_test_id("viewer-image")).to_have_attribute("src", re.compile("^blob:"))
    size = int(rendered.value.url.split("viewport=")[1].split("%2C")[0])
    expect(page.get_by_test_id("frame-index")).to_have_text("Frame 1 of 1")
    expect(page.get_by_test_id("instance-index")).to_have_text("Instance 1 of 1")
    expect(page.get_by_test_id("instance-prev")).to_be_disabled()
    expect(page.get_by_test_id("instance-next")).to_be_disabled()
    default = shown_image(page).convert("L")
    _low, high = default.getextrema()
    assert isinstance(high, int) and high > 64, "the image is black"
    with httpx.Client(base_url=server.url, auth=("admin", PASSWORD)) as api:
        name = api.get("/dicomFile", params={"PatientID": "1CT1"}).json()["data"][0]["name"]
        png = api.get(f"/dicomFile/{name}?png&size={size}").content
    expected = Image.open(io.BytesIO(png)).convert("L")
    assert ImageChops.difference(default, expected).getbbox() is None, "the viewer differs from ?png"

    with page.expect_response(lambda r: "window=" in r.url):
        page.get_by_test_id("window-preset").select_option(label="Bone (300/1500)")
    expect(page.get_by_test_id("viewer-image")).to_have_attribute("data-window", "300,1500")
    boned = shown_image(page).convert("L")
    assert ImageChops.difference(default, boned).getbbox() is not None, "the window preset changed nothing"

    box = page.locator("#stage").bounding_box()
    assert box is not None
    x, y = round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y - 40, steps=6)  # right: wider; up: higher centre (1500/256 per pixel)
    page.mouse.up()
    expect(page.get_by_test_id("viewer-image")).to_have_attribute("data-window", "534,1852")
    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#stage")).to_have_class(re.compile("zoomed"))
    wide = page.get_by_test_id("viewer-image").bounding_box()
    assert wide is not None and wide["width"] > box["width"] * 1.4
    page.get_by_role("button", name="Fit").click()
    expect(page.locator("#stage")).not_to_have_class(re.compile("zoomed"))

    page.get_by_text("Header", exact=True).click()
    expect(page.get_by_test_id("tags-table")).to_contain_text("CompressedSamples^CT1")
    page.locator("#tags-filter").fill("PatientID")
    expect(page.get_by_test_id("tags-table").locator("tbody tr:visible")).to_have_count(1)
    expect(page.get_by_test_id("tags-table").locator("tbody tr:visible")).to_contain_text("1CT1")
    shots(page, folder, "viewer")
    with page.expect_download() as zipped:  # the session's cookie: a plain link the browser streams to disk
        page.get_by_test_id("download-study").click()
    assert zipped.value.suggested_filename.endswith(".zip")
    assert zip_members(zipped.value) == study_zip("CT_small.dcm")

    page.get_by_test_id("share-button").click()
    page.get_by_test_id("share-expiry").select_option(label="1 hour")
    page.get_by_test_id("share-create").click()
    expect(page.get_by_test_id("share-url")).to_have_value(re.compile(re.escape(f"{server.url}/ui/#share=lbs_")))
    link = page.get_by_test_id("share-url").input_value()
    assert link.startswith(f"{server.url}/ui/#share=lbs_")
    expect(page.get_by_test_id("share-revoke")).to_have_count(1)

    guest = browser.new_context(viewport=WIDE)
    assert guest.cookies() == []
    shared = guest.new_page()
    local_only(shared, server, blocked)
    seen: list[str] = []
    shared.on("request", lambda request: seen.append(request.url))
    shared.goto(link)
    expect(shared.locator("#study-title")).to_contain_text("CompressedSamples^CT1")
    expect(shared.get_by_test_id("viewer-image")).to_have_attribute("src", re.compile("^blob:"))
    expect(shared.get_by_test_id("study-row")).to_have_count(0)
    expect(shared.get_by_test_id("upload-input")).to_be_hidden()
    expect(shared.get_by_test_id("share-button")).to_be_hidden()
    shots(shared, folder, "share")
    with shared.expect_download() as zipped:  # the share token goes in a header: fetched into a blob
        shared.get_by_test_id("download-study").click()
    assert zip_members(zipped.value) == study_zip("CT_small.dcm")
    assert not any("lbs_" in url for url in seen if not url.startswith(server.url + "/ui/#")), "token in a URL"
    studies = shared.evaluate(
        """async (token) => (await fetch('/dicom-web/studies',
            {headers: {Authorization: 'Bearer ' + token}})).json()""",
        link.split("#share=")[1],
    )
    assert len(studies) == 1 and studies[0]["00100020"]["Value"] == ["1CT1"]

    page.get_by_test_id("share-revoke").click()
    expect(page.get_by_test_id("share-revoke")).to_have_count(0)
    refused = guest.new_page()
    refused.goto(link)
    expect(refused.locator("#notice")).to_have_text("This link is no longer valid (it expired or was revoked).")
    expect(refused.locator("#study")).to_be_hidden()
    guest.close()

    page.get_by_role("button", name="← All studies").click()
    page.get_by_test_id("search-input").fill("")
    page.get_by_role("button", name="Search").click()
    page.locator("tr", has_text="(no name)").get_by_role("button").click()
    expect(page.get_by_test_id("frame-index")).to_have_text("Frame 1 of 10")
    expect(page.get_by_test_id("window-preset")).to_have_value("")  # another study: its own window again
    page.get_by_test_id("frame-next").click()
    expect(page.get_by_test_id("frame-index")).to_have_text("Frame 2 of 10")
    page.get_by_test_id("viewer-image").focus()
    page.locator("#stage").press("ArrowRight")
    expect(page.get_by_test_id("frame-index")).to_have_text("Frame 3 of 10")
    expect(page.get_by_test_id("viewer-image")).to_have_attribute("alt", re.compile("frame 3 of 10$"))
    shots(page, folder, "multiframe")

    with page.expect_download() as download:
        page.get_by_test_id("download-button").click()
    assert Path(download.value.path()).read_bytes() == sample("emri_small.dcm").read_bytes()
    page.get_by_test_id("delete-button").click()
    expect(page.get_by_test_id("delete-confirm")).to_be_visible()
    page.get_by_role("button", name="Keep it").click()
    expect(page.get_by_test_id("delete-confirm")).to_be_hidden()
    page.get_by_test_id("delete-button").click()
    page.get_by_test_id("delete-confirm").click()
    expect(page.locator("#notice")).to_have_text("The study has no more instances.")
    expect(page.get_by_test_id("study-row")).to_have_count(2)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_test_id("login-submit")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("login-submit")).to_be_visible()
    context.close()
    assert blocked == []
    assert errors == []


AXE = Path(__file__).with_name("axe") / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = {"serious", "critical"}


def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations of the page as it is now (rule id and the nodes)."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, object]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(
            (v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' '))}))"""
    )
    return [f"{v['id']} ({v['impact']}): {v['nodes']}" for v in found if v["impact"] in SERIOUS]


def test_login_list_viewer_and_share_pages_pass_axe(server: Server, browser: Browser) -> None:
    """axe-core (injected, so this context bypasses the CSP; the flow above runs under it) at 1440 and 375 px."""
    assert AXE.exists(), "npm ci --prefix tests/e2e/axe (scripts/test does)"
    with httpx.Client(base_url=server.url, auth=("admin", PASSWORD)) as api:
        for name in FILES[:2]:  # already stored by the flow, or stored now when this test runs alone
            stored = api.post("/upload", files={"file": (name, sample(name).read_bytes())})
            assert stored.status_code in (200, 201)
        study = api.get("/dicomFile", params={"PatientID": "1CT1"}).json()["data"][0]["study-instance-uid"]
        token = api.post("/shares", json={"study_instance_uid": study, "expires_in": 600}).json()["token"]
    report: dict[str, list[str]] = {}
    for label, size in (("1440", WIDE), ("375", PHONE)):
        context = browser.new_context(viewport=size, bypass_csp=True)
        page = context.new_page()
        page.goto(server.url + "/ui/")
        expect(page.get_by_test_id("login-submit")).to_be_visible()
        report[f"login-{label}"] = axe_violations(page)
        page.get_by_test_id("login-username").fill("admin")
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("study-row").first).to_be_visible()
        report[f"list-{label}"] = axe_violations(page)
        page.get_by_role("button", name="Open the study of CompressedSamples^CT1, 2004-01-19").click()
        expect(page.get_by_test_id("viewer-image")).to_have_attribute("src", re.compile("^blob:"))
        page.get_by_text("Header", exact=True).click()
        page.get_by_test_id("share-button").click()
        expect(page.get_by_test_id("tags-table")).to_contain_text("1CT1")
        report[f"viewer-{label}"] = axe_violations(page)
        context.close()
        guest = browser.new_context(viewport=size, bypass_csp=True)
        shared = guest.new_page()
        shared.goto(f"{server.url}/ui/#share={token}")
        expect(shared.get_by_test_id("viewer-image")).to_have_attribute("src", re.compile("^blob:"))
        report[f"share-{label}"] = axe_violations(shared)
        guest.close()
    print("axe-core serious/critical violations:", report)
    assert report == {page: [] for page in report}


def test_previous_and_next_instance_of_a_series(server: Server, browser: Browser, tmp_path: Path) -> None:
    """Three instances of one series, uploaded out of order: the buttons and Page Up / Page Down walk
    them in Instance Number order, each shown as the server renders it; the study's ZIP holds all three."""
    study, series = generate_uid(), generate_uid()
    uploaded: dict[str, bytes] = {}
    by_number: dict[int, str] = {}
    with httpx.Client(base_url=server.url, auth=("admin", PASSWORD)) as api:
        for number, value in ((3, 900), (1, 100), (2, 500)):
            ds = dcmread(sample("CT_small.dcm"))
            ds.PatientName, ds.PatientID = "Walk^Through", "WALK1"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.InstanceNumber = number
            ds.WindowCenter, ds.WindowWidth = value, 400  # each its own picture
            path = tmp_path / f"walk-{number}.dcm"
            ds.save_as(path)
            assert api.post("/upload", files={"file": (path.name, path.read_bytes())}).status_code == 201
            uploaded[f"{series}/{ds.SOPInstanceUID}.dcm"] = path.read_bytes()
            by_number[number] = ds.SOPInstanceUID
    order = [by_number[number] for number in (1, 2, 3)]

    page = browser.new_page(viewport=WIDE)
    page.goto(server.url + "/ui/")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("search-input").fill("walk")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("study-row")).to_have_count(1)

    def rendered(uid: str) -> re.Pattern[str]:
        return re.compile(f"/instances/{re.escape(uid)}/frames/1/rendered")

    with page.expect_response(rendered(order[0])):
        page.get_by_test_id("study-row").get_by_role("button").click()
    expect(page.get_by_test_id("instance-row")).to_have_count(3)
    expect(page.get_by_test_id("instance-index")).to_have_text("Instance 1 of 3")
    expect(page.get_by_test_id("instance-prev")).to_be_disabled()
    expect(page.get_by_test_id("viewer-image")).to_have_attribute("alt", re.compile("^Instance 1,"))
    first = shown_image(page).convert("L")
    with page.expect_response(rendered(order[1])):
        page.get_by_test_id("instance-next").click()
    expect(page.get_by_test_id("instance-index")).to_have_text("Instance 2 of 3")
    expect(page.get_by_test_id("viewer-image")).to_have_attribute("alt", re.compile("^Instance 2,"))
    assert ImageChops.difference(first, shown_image(page).convert("L")).getbbox() is not None
    expect(page.get_by_test_id("instance-row").nth(1).get_by_role("button")).to_have_attribute("aria-current", "true")
    page.locator("#stage").focus()
    with page.expect_response(rendered(order[2])):
        page.keyboard.press("PageDown")
    expect(page.get_by_test_id("instance-index")).to_have_text("Instance 3 of 3")
    expect(page.get_by_test_id("instance-next")).to_be_disabled()
    page.keyboard.press("PageDown")  # the last one: nothing happens
    expect(page.get_by_test_id("instance-index")).to_have_text("Instance 3 of 3")
    with page.expect_response(rendered(order[1])):
        page.keyboard.press("PageUp")
    expect(page.get_by_test_id("instance-index")).to_have_text("Instance 2 of 3")
    expect(page.locator("#stage")).to_be_focused()
    with page.expect_response(rendered(order[0])):
        page.get_by_test_id("instance-prev").click()
    expect(page.get_by_test_id("instance-index")).to_have_text("Instance 1 of 3")

    with page.expect_download() as zipped:
        page.get_by_test_id("download-study").click()
    assert zip_members(zipped.value) == uploaded
    page.close()


def test_single_user_mode_opens_straight_in(browser: Browser, tmp_path: Path) -> None:
    """Without auth (loopback only) GET /auth/me answers for the local user: no sign-in form, no sign-out."""
    with lightbox(tmp_path, workers="1") as single:
        page = browser.new_page(viewport=WIDE)
        page.goto(single.url + "/")
        expect(page.get_by_test_id("upload-input")).to_be_attached()
        expect(page.locator("#upload")).to_be_visible()
        expect(page.locator("#studies")).to_be_visible()
        expect(page.locator("#study-empty")).to_be_visible()
        expect(page.get_by_test_id("login-submit")).to_be_hidden()
        expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        page.get_by_test_id("upload-input").set_input_files([sample("CT_small.dcm")])
        expect(page.get_by_test_id("upload-result")).to_have_text(re.compile("^Stored as "))
        expect(page.get_by_test_id("study-row")).to_have_count(1)

        folder = tmp_path / "cd"
        folder.mkdir()
        with zipfile.ZipFile(folder / "study.zip", "w") as archive:
            archive.write(sample("MR_small.dcm"), "study/MR_small.dcm")
            archive.writestr("study/README.txt", "not DICOM")
        (folder / "CT_small.dcm").write_bytes(sample("CT_small.dcm").read_bytes())
        page.locator("#upload-folder").set_input_files(folder)
        results = page.get_by_test_id("upload-result")
        expect(results).to_have_count(2)
        expect(page.locator("#upload-summary")).to_have_text("2 of 2 files done, 1 stored")
        outcomes = sorted(results.all_inner_texts())
        assert outcomes[0] == "File already saved as: " + outcomes[0].split(": ", 1)[1], outcomes
        assert outcomes[1].startswith("Saved 1 of 2 files. Refused: study/README.txt: "), outcomes
        expect(page.get_by_test_id("study-row")).to_have_count(2)

        dropped = page.evaluate_handle(
            """(encoded) => {
                const transfer = new DataTransfer();
                const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], 'US1_J2KR.dcm', {type: 'application/dicom'}));
                return transfer;
            }""",
            base64.b64encode(sample("US1_J2KR.dcm").read_bytes()).decode(),
        )
        page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
        expect(results).to_have_count(1)
        expect(results).to_have_text(re.compile("^Stored as [0-9a-f-]{36}-US1_J2KR.dcm$"))
        expect(page.get_by_test_id("study-row")).to_have_count(3)

        with zipfile.ZipFile(folder / "more.zip", "w") as archive:  # a ZIP through the file input too
            archive.write(sample("JPEG2000.dcm"), "JPEG2000.dcm")
            archive.write(sample("CT_small.dcm"), "again/CT_small.dcm")
        page.get_by_test_id("upload-input").set_input_files([folder / "more.zip"])
        expect(results).to_have_count(1)
        expect(results).to_have_text("Saved 2 of 2 files")
        expect(page.get_by_test_id("study-row")).to_have_count(4)
        page.close()
