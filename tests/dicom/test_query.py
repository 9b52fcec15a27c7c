"""C-FIND identifiers to index queries and matches to responses (PS3.4 C.2.2.2, C.4.1)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from app.dicom.query import find_query, find_response, query_level
from app.errors import InvalidRequest
from app.index.base import FindMatch, QueryLevel

STUDY_ROOT = (QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.IMAGE)


def identifier(**keys: str) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_keys_below_the_level_are_ignored_and_uid_lists_split() -> None:
    ds = identifier(QueryRetrieveLevel="SERIES", StudyInstanceUID="1.2\\1.3", Modality="C?", SOPInstanceUID="9.9")
    query = find_query(ds, query_level(ds, STUDY_ROOT))
    assert query.level is QueryLevel.SERIES
    assert query.study_instance_uids == ("1.2", "1.3")
    assert query.modality == "C?"
    assert query.sop_instance_uids == ()  # IMAGE level key at SERIES level


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20200101", ("20200101", "20200101")), ("20200101-", ("20200101", "")), ("-20201231", ("", "20201231"))],
)
def test_date_ranges(text: str, expected: tuple[str, str]) -> None:
    query = find_query(identifier(StudyDate=text), QueryLevel.STUDY)
    assert (query.study_date_from, query.study_date_to) == expected


def test_bad_date_range_and_level_are_invalid_requests() -> None:
    with pytest.raises(InvalidRequest):
        find_query(identifier(StudyDate="2020-01-01"), QueryLevel.STUDY)
    with pytest.raises(InvalidRequest):
        query_level(identifier(QueryRetrieveLevel="PATIENT"), STUDY_ROOT)
    with pytest.raises(InvalidRequest):
        query_level(identifier(), STUDY_ROOT)


def test_the_response_answers_exactly_the_requested_keys() -> None:
    request = identifier(QueryRetrieveLevel="STUDY", PatientName="", StudyInstanceUID="", StudyTime="")
    request.ModalitiesInStudy = ""
    match = FindMatch("P1", "Doe^Jane", "", study_instance_uid="1.2.3", modalities_in_study="CT\\MR")
    answer = find_response(request, match)
    assert answer.PatientName == "Doe^Jane" and answer.StudyInstanceUID == "1.2.3"
    assert list(answer.ModalitiesInStudy) == ["CT", "MR"]
    assert answer.StudyTime == ""  # not indexed: returned empty
    assert "PatientID" not in answer and answer.QueryRetrieveLevel == "STUDY"
