"""QIDO results read a stored header only as far as they need (the bulky sequences come later)."""

from __future__ import annotations

import json

from pydicom import dcmread

from app.dicom.header_json import header_json
from app.dicom.qido import Level, parse_search
from app.dicom.qido_result import needed_up_to, parse_header
from tests.conftest import sample


def test_a_study_search_stops_before_the_bulky_part() -> None:
    header = header_json(dcmread(sample("CT_small.dcm")), 65536)
    text = json.dumps(header, separators=(",", ":"))  # as the index stores it
    last = needed_up_to(parse_search(Level.STUDY, []))
    assert last is not None
    partial = parse_header(text, last)
    assert "7FE00010" not in partial and "00280010" not in partial
    assert {key: value for key, value in header.items() if key <= last} == partial


def test_everything_when_all_fields_are_asked_for() -> None:
    text = json.dumps(header_json(dcmread(sample("CT_small.dcm")), 65536))
    assert needed_up_to(parse_search(Level.STUDY, [("includefield", "all")])) is None
    assert parse_header(text, None) == json.loads(text)
    assert needed_up_to(parse_search(Level.STUDY, [("includefield", "00280010")])) == "00280010"


def test_a_cut_inside_a_sequence_parses_the_whole_header() -> None:
    nested = {
        "00081140": {
            "vr": "SQ",
            "Value": [{"00081150": {"vr": "UI", "Value": ["1.2"]}, "00500010": {"vr": "LO", "Value": ["inside"]}}],
        },
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
        "7FE00010": {"vr": "OW", "BulkDataURI": ""},
    }
    text = json.dumps(nested, separators=(",", ":"))
    assert parse_header(text, "00201208") == nested
