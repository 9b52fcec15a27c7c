"""Every file of pydicom's own test data (pydicom.data and pydicom-data) that pydicom reads is accepted.

Except, each with its reason: files cut short (pydicom reads what is there; we do not keep a
file whose declared lengths run past its end) and data sets without a SOP Instance UID (nothing
to identify the instance by). Files pydicom cannot read at all are not candidates.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.data import get_testdata_files

pytestmark = pytest.mark.anyio

#: Cut short on purpose in pydicom's test data: the reason we refuse them.
TRUNCATED = {
    "MR_truncated.dcm": "the value of (7FE0,0010)",  # Pixel Data shorter than its length
    "rtplan_truncated.dcm": "the value of (300A,00B0)",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "pixel data item",
    "DICOMDIR-nooffset": "sequence item",  # an element removed, the lengths around it left as they were
}


def _pydicom_identity(path: Path) -> str | None:
    """The SOP Instance UID pydicom finds (data set, else File Meta); None when it cannot read the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:
            return None
        meta = getattr(ds, "file_meta", None) or pydicom.Dataset()
        return str(ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or "").rstrip("\0 ")


def candidates() -> list[Path]:
    return sorted(Path(p) for p in get_testdata_files() if Path(p).is_file())


def test_the_test_data_is_installed() -> None:
    names = {path.name for path in candidates()}
    assert len(names) > 200
    assert {"SC_rgb_jpeg.dcm", "bad_sequence.dcm", "ExplVR_BigEndNoMeta.dcm"} <= names
    assert set(TRUNCATED) <= names


async def test_every_file_pydicom_reads_is_accepted(client: httpx.AsyncClient) -> None:
    failures, accepted = [], 0
    for path in candidates():
        uid = _pydicom_identity(path)
        if uid is None:
            continue
        response = await client.post("/upload", files={"file": (path.name, path.read_bytes())})
        body = response.json()
        if path.name in TRUNCATED:
            if (
                response.status_code != 400
                or "truncated" not in body["error"]
                or TRUNCATED[path.name] not in body["error"]
            ):
                failures.append(f"{path.name}: expected a 400 for a file cut short, got {response.status_code} {body}")
        elif not uid:  # README.txt and other files pydicom "reads" into an empty data set, or no identity
            if response.status_code != 400 or not body["error"]:
                failures.append(f"{path.name}: no SOP Instance UID, expected 400, got {response.status_code} {body}")
        elif response.status_code != 201:
            failures.append(f"{path.name}: refused {response.status_code} {body}")
        else:
            accepted += 1
            rows = (await client.get("/dicomFile", params={"limit": 1})).json()["data"]
            assert rows[0]["name"] == body["name"] and rows[0]["sop-instance-uid"] == uid, path.name
            # another file of the test data may carry the same SOP Instance UID (the same image re-encoded)
            assert (await client.delete(f"/dicomFile/{body['name']}")).status_code == 204
    assert failures == []
    assert accepted > 200
