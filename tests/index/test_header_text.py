"""The header as the index stores it: orjson's text, read back as the json module's would be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.data import get_charset_files, get_testdata_files

from app.dicom.header_json import header_json
from app.dicom.ingest import read_header
from app.index.sql import _dump_header

FILES = sorted(path for path in map(Path, [*get_testdata_files(), *get_charset_files()]) if path.is_file())


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_every_bundled_header_reads_back_as_the_json_module_wrote_it(path: Path) -> None:
    try:
        header = header_json(read_header(path), 1024)
    except Exception:
        pytest.skip(f"{path.name} is not a data set pydicom parses")
    text = _dump_header(header)
    assert json.loads(text) == json.loads(json.dumps(header)) == header


@pytest.mark.parametrize(
    "value",
    [2**70, "lone \udc80 surrogate"],
    ids=["integer past 64 bits", "lone surrogate"],
)
def test_what_orjson_refuses_is_written_by_the_json_module(value: object) -> None:
    header = {"00191001": {"vr": "UN", "Value": [value]}}
    assert json.loads(_dump_header(header)) == header
