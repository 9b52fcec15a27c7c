"""QIDO-RS query parsing (PS3.18 8.3.4, PS3.4 C.2.2.2): kinds of matching, levels, control parameters."""

from __future__ import annotations

import pytest

from app.dicom.qido import Level, Match, MatchKind, parse_search
from app.errors import InvalidRequest


def test_matches_by_kind() -> None:
    query = parse_search(
        Level.INSTANCE,
        [
            ("PatientName", "Doe^J*"),
            ("00080020", "20200101-20201231"),
            ("StudyTime", "-1200"),
            ("SOPInstanceUID", "1.2.3,1.2.4"),
            ("InstanceNumber", "7"),
            ("ModalitiesInStudy", "CT\\MR"),
            ("AccessionNumber", ""),  # universal matching: no condition
        ],
    )
    assert query.matches == (
        Match("PatientName", MatchKind.PERSON_NAME, ("Doe^J*",)),
        Match("StudyDate", MatchKind.DATE, (), "20200101", "20201231"),
        Match("StudyTime", MatchKind.TIME, (), None, "1200"),
        Match("SOPInstanceUID", MatchKind.UID, ("1.2.3", "1.2.4")),
        Match("InstanceNumber", MatchKind.NUMBER, ("7",)),
        Match("ModalitiesInStudy", MatchKind.ANY_OF, ("CT", "MR")),
    )


def test_keys_below_the_level_are_ignored_with_a_warning() -> None:
    query = parse_search(Level.STUDY, [("SOPInstanceUID", "1.2"), ("fuzzymatching", "true")])
    assert query.matches == ()
    assert any("fuzzymatching" in w for w in query.warnings)
    assert any("SOPInstanceUID" in w for w in query.warnings)
    nested = parse_search(Level.SERIES, [("RequestAttributesSequence.RequestedProcedureID", "7")])
    assert nested.matches == () and "RequestAttributesSequence.RequestedProcedureID" in nested.warnings[0]


def test_control_parameters() -> None:
    query = parse_search(Level.SERIES, [("limit", "5"), ("offset", "10"), ("includefield", "00081030,Rows")])
    assert (query.limit, query.offset, query.include) == (5, 10, (0x00081030, 0x00280010))
    assert parse_search(Level.SERIES, [("includefield", "all")]).include_all


@pytest.mark.parametrize(
    "params",
    [
        [("NotAKeyword", "x")],
        [("StudyDate", "2020-01-01")],
        [("StudyDate", "20201231-20200101")],
        [("StudyInstanceUID", "1.2\x01")],  # a control character (opaque, non-conformant UIDs are kept)
        [("limit", "100000")],
        [("offset", "-1")],
        [("fuzzymatching", "maybe")],
        [("includefield", "NoSuchThing")],
        [("SeriesNumber", "one")],
        [("RequestAttributesSequence.Ünknown", "x")],
    ],
)
def test_malformed_queries_are_refused_with_the_reason(params: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidRequest):
        parse_search(Level.INSTANCE, params)
