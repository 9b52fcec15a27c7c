"""The header's fast paths build exactly what pydicom's own conversion builds, on every bundled file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.data import get_charset_files, get_testdata_files
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from app.dicom.header_json import PIXEL_TAGS, _no_bulk_uri, header_json
from app.dicom.ingest import read_header
from app.dicom.simple_json import simple_element_json

INLINE = 1024
BUNDLED = [*get_testdata_files(), *get_charset_files()]  # the charset files test the text decoding
FILES = sorted(path for path in map(Path, BUNDLED) if path.is_file())


def _parsed(path: Path) -> Dataset:
    try:
        dataset = read_header(path)
        for tag in list(dataset.keys()):
            dataset.get_item(tag)  # must not fail on the element structure
    except Exception:
        pytest.skip(f"{path.name} is not a data set pydicom parses")
    return dataset


def _sources(dataset: Dataset) -> list[Dataset]:
    meta = getattr(dataset, "file_meta", None)
    return [dataset] if meta is None else [meta, dataset]


def _every_element_converted(dataset: Dataset) -> Dataset:
    """Each element through ``Dataset.__getitem__`` (pydicom's conversion), so no fast path applies."""
    for source in _sources(dataset):
        for tag in list(source.keys()):
            raw = source.get_item(tag, keep_deferred=True)
            if tag in PIXEL_TAGS or (
                getattr(raw, "value", None) is None and getattr(raw, "length", 0) not in (0, 0xFFFFFFFF)
            ):
                continue  # pixel data and values left on disk are described from the raw element either way
            try:
                source[tag]
            except Exception:
                continue  # unconvertible: a bulk value either way
    return dataset


def test_the_files_are_there() -> None:
    assert len(FILES) > 100


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_header_equals_pydicom_conversion(path: Path) -> None:
    fast = header_json(_parsed(path), INLINE)
    reference = header_json(_every_element_converted(_parsed(path)), INLINE)
    assert json.dumps(fast, sort_keys=True) == json.dumps(reference, sort_keys=True)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_simple_elements_equal_to_json_dict(path: Path) -> None:
    dataset = _every_element_converted(_parsed(path))
    for source in _sources(dataset):
        for elem in source.elements():
            if not isinstance(elem, DataElement):
                continue
            simple = simple_element_json(elem)
            if simple is not None:
                expected = elem.to_json_dict(bulk_data_element_handler=_no_bulk_uri, bulk_data_threshold=INLINE)
                assert json.dumps(simple) == json.dumps(expected), elem.tag
