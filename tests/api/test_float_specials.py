"""FL/FD values may be NaN or infinite (IEEE 754, CP-2352); every JSON answer stays valid JSON (RFC 8259)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmread

from tests.conftest import sample, upload

pytestmark = pytest.mark.anyio
SPECIALS = {"NaN": math.nan, "inf": math.inf, "-inf": -math.inf}


def strict(text: str) -> object:
    """Parse as strict JSON: NaN and Infinity tokens are refused."""

    def refuse(token: str) -> object:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


async def test_nan_and_infinities_are_json_strings(client: httpx.AsyncClient, tmp_path: Path) -> None:
    dataset = dcmread(sample("CT_small.dcm"))
    dataset.add_new(0x00189087, "FD", math.nan)  # Diffusion b-value
    dataset.add_new(0x00189089, "FD", [math.inf, 1.5, -math.inf])  # Diffusion Gradient Orientation
    dataset.add_new(0x00189092, "FL", math.nan)  # (a FL too)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    path = tmp_path / "specials.dcm"
    path.write_bytes(buffer.getvalue())
    name = await upload(client, path)
    answers = {}
    for tag in ("(0018,9087)", "(0018,9089)", "(0018,9092)"):
        response = await client.get(f"/dicomFile/{name}", params={"tag": tag})
        assert response.status_code == 200, response.text
        answers[tag] = strict(response.text)
    assert answers["(0018,9087)"]["data"]["value"] == ["NaN"]  # type: ignore[index]
    assert answers["(0018,9089)"]["data"]["value"] == ["inf", 1.5, "-inf"]  # type: ignore[index]
    assert answers["(0018,9089)"]["data"]["header-attribute-value"] == "[inf 1.5 -inf]"  # type: ignore[index]
    metadata = strict((await client.get(f"/dicomFile/{name}", params={"metadata": ""})).text)
    assert metadata[0]["00189087"] == {"vr": "FD", "Value": ["NaN"]}  # type: ignore[index]
    study, series, sop = dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID
    wado = await client.get(f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/metadata")
    assert strict(wado.text)[0]["00189089"]["Value"] == ["inf", 1.5, "-inf"]  # type: ignore[index]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=4))
async def test_any_double_answers_valid_json(client: httpx.AsyncClient, tmp_path: Path, values: list[float]) -> None:
    dataset = dcmread(sample("CT_small.dcm"))
    dataset.add_new(0x00189089, "FD", values)
    dataset.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1.{abs(hash(tuple(map(repr, values))))}"
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    path = tmp_path / "doubles.dcm"
    path.write_bytes(buffer.getvalue())
    name = await upload(client, path)
    response = await client.get(f"/dicomFile/{name}", params={"tag": "(0018,9089)"})
    assert response.status_code == 200, response.text
    shown = strict(response.text)["data"]["value"]  # type: ignore[index]
    for got, sent in zip(shown, values, strict=True):
        if isinstance(got, str):  # only the specials are strings
            assert math.isnan(sent) if got == "NaN" else sent == SPECIALS[got]
        else:
            assert got == sent
    await client.delete(f"/dicomFile/{name}")
