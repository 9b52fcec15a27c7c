"""Malformed image headers and unexpected failures inside rendering: always a JSON 4xx, never a 500.

A bad image-describing element answers 422 naming it; an unknown or private transfer syntax
415 naming it; anything unexpected raised while rendering still leaves through the one error table.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import LightboxError
from app.services import renders
from app.services.renders import Encoding, RenderRequest, render_file
from tests.hostile.builders import raw_image

pytestmark = pytest.mark.anyio

WINDOW = {(0x0028, 0x1051): (b"DS", b"40")}


async def render_status(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    upload = await client.post("/upload", files={"file": ("header.dcm", data)})
    assert upload.status_code == 201, upload.text
    return await client.get(f"/dicomFile/{upload.json()['name']}?png")


@pytest.mark.parametrize(
    ("replace", "named"),
    [
        ({(0x0028, 0x0010): (b"US", b"\x04\x00\x00")}, "Rows (0028,0010)"),
        ({(0x0028, 0x0011): (b"IS", b"12abc ")}, "Columns (0028,0011)"),
        ({(0x0028, 0x0100): (b"IS", b"AB")}, "Bits Allocated (0028,0100)"),
        ({(0x0028, 0x0100): (b"CS", b"EIGHT ")}, "Bits Allocated (0028,0100)"),
        ({(0x0028, 0x0002): (b"US", b"\x01")}, "Samples per Pixel (0028,0002)"),
        ({(0x0028, 0x0101): (b"US", struct.pack("<H", 12))}, "Bits Stored (0028,0101)"),
        ({(0x0028, 0x0103): (b"US", struct.pack("<H", 7))}, "Pixel Representation (0028,0103)"),
        ({(0x0028, 0x1050): (b"DS", b"abc "), **WINDOW}, "Window Center (0028,1050)"),
        ({(0x0028, 0x1050): (b"DS", b"40"), (0x0028, 0x1051): (b"DS", b"wide")}, "Window Width (0028,1051)"),
        ({(0x0028, 0x1053): (b"DS", b"one ")}, "Rescale Slope (0028,1053)"),
        ({(0x0028, 0x1052): (b"DS", b"NaN ")}, "Rescale Intercept (0028,1052)"),
    ],
    ids=[
        "rows-3-bytes",
        "columns-not-a-number",
        "bits-allocated-text",
        "bits-allocated-cs",
        "samples-1-byte",
        "bits-stored-above-allocated",
        "pixel-representation-7",
        "window-center-text",
        "window-width-text",
        "rescale-slope-text",
        "rescale-intercept-nan",
    ],
)
async def test_malformed_image_elements_answer_422_naming_them(
    client: httpx.AsyncClient, replace: dict[tuple[int, int], tuple[bytes, bytes]], named: str
) -> None:
    response = await render_status(client, raw_image(replace))
    assert response.status_code == 422, response.text
    assert named in response.json()["error"]


async def test_a_window_override_does_not_read_the_files_window(client: httpx.AsyncClient) -> None:
    upload = await client.post("/upload", files={"file": ("w.dcm", raw_image({(0x0028, 0x1050): (b"DS", b"abc ")}))})
    response = await client.get(f"/dicomFile/{upload.json()['name']}?png&window=40,80")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("uid", "kind"), [("1.2.3.4.5.6.7", "private"), ("1.2.840.10008.1.2.4.999", "unknown")], ids=["private", "unknown"]
)
async def test_unknown_and_private_transfer_syntaxes_answer_415_naming_them(
    client: httpx.AsyncClient, uid: str, kind: str
) -> None:
    response = await render_status(client, raw_image(transfer_syntax=uid))
    assert response.status_code == 415, response.text
    assert f"'{uid}' is {kind}" in response.json()["error"]


async def test_a_known_syntax_without_a_decoder_answers_415(client: httpx.AsyncClient) -> None:
    response = await render_status(client, raw_image(transfer_syntax="1.2.840.10008.1.2.4.94"))  # JPIP Referenced
    assert response.status_code == 415, response.text
    assert "JPIP Referenced" in response.json()["error"]


async def test_a_video_syntax_over_native_pixel_data_answers_422(client: httpx.AsyncClient) -> None:
    """MPEG2 (PS3.5 8.2.5) promises encapsulated fragments; 16 plain bytes are no bitstream."""
    response = await render_status(client, raw_image(transfer_syntax="1.2.840.10008.1.2.4.100"))
    assert response.status_code == 422, response.text
    assert "video fragments could not be read" in response.json()["error"]


async def test_an_unexpected_exception_while_rendering_is_json_from_the_error_table(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault injection: the display stage raises what no code path expects, with patient data in its text."""

    def explode(*_args: object, **_kwargs: object) -> np.ndarray:
        raise ZeroDivisionError("DOE^JANE secret detail")

    monkeypatch.setattr(renders, "to_display", explode)
    with caplog.at_level(logging.INFO):
        response = await render_status(client, raw_image())
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and "ZeroDivisionError" in body["error"]
    assert "DOE^JANE" not in response.text and "Traceback" not in response.text
    assert "DOE^JANE" not in caplog.text


async def test_an_exception_loading_the_header_is_json_too(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = await client.post("/upload", files={"file": ("h.dcm", raw_image())})

    def broken(_name: str) -> None:
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(app.state.instances, "header_blocking", broken)
    response = await client.get(f"/dicomFile/{upload.json()['name']}?png")
    assert response.status_code == 422 and "error" in response.json()


IMAGE_TAGS = [(0x0028, e) for e in (0x0002, 0x0004, 0x0006, 0x0008, 0x0010, 0x0011, 0x0100, 0x0101, 0x0102, 0x0103)]
IMAGE_TAGS += [(0x0028, e) for e in (0x1050, 0x1051, 0x1052, 0x1053, 0x1056, 0x2000)]
VRS = [b"US", b"SS", b"UL", b"IS", b"DS", b"CS", b"LO", b"OB", b"UN", b"FD"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(
        st.sampled_from(IMAGE_TAGS),
        st.tuples(st.sampled_from(VRS), st.binary(max_size=12).map(lambda b: b + b"\x00" * (len(b) % 2))),
        min_size=1,
        max_size=4,
    )
)
def test_any_image_element_value_renders_or_is_a_domain_error(
    tmp_path: Path, changes: dict[tuple[int, int], tuple[bytes, bytes]]
) -> None:
    """Property: whatever the Image Pixel and VOI elements hold, render_file returns a PNG or a domain error."""
    path = tmp_path / "any.dcm"
    path.write_bytes(raw_image(changes))
    try:
        assert render_file(path, None, RenderRequest(), Encoding(1 << 24, 1, 90)).startswith(b"\x89PNG")
    except LightboxError as error:
        assert error.message
