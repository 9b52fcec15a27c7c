"""C-FIND/C-GET identifiers (PS3.4 C.4.1, C.4.3) to index queries, and index matches to responses.

Matching follows PS3.4 C.2.2.2: an empty key is universal matching (return the value), a value is
single value matching, ``*``/``?`` wildcard matching (names, IDs, description, modality), a
backslash-separated UID list is list of UID matching, and a date ``A-B`` (either end open) is
range matching. Keys of levels below the Query/Retrieve Level are ignored (hierarchical
queries, C.4.1.3.1); keys the index does not hold are returned empty.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from app.errors import InvalidRequest
from app.index.base import MAX_LIMIT, FindMatch, FindQuery, QueryLevel

#: Attributes answered from the index, by keyword: the FindMatch field that holds each one.
ANSWERED = {
    "PatientID": "patient_id",  # (0010,0020)
    "PatientName": "patient_name",  # (0010,0010)
    "PatientBirthDate": "patient_birth_date",  # (0010,0030)
    "StudyInstanceUID": "study_instance_uid",  # (0020,000D)
    "StudyDate": "study_date",  # (0008,0020)
    "StudyDescription": "study_description",  # (0008,1030)
    "AccessionNumber": "accession_number",  # (0008,0050)
    "ModalitiesInStudy": "modalities_in_study",  # (0008,0061)
    "SeriesInstanceUID": "series_instance_uid",  # (0020,000E)
    "Modality": "modality",  # (0008,0060)
    "SeriesNumber": "series_number",  # (0020,0011)
    "SOPClassUID": "sop_class_uid",  # (0008,0016)
    "SOPInstanceUID": "sop_instance_uid",  # (0008,0018)
    "InstanceNumber": "instance_number",  # (0020,0013)
}
LEVEL_KEYWORD = "QueryRetrieveLevel"  # (0008,0052)


def _text(identifier: Dataset, keyword: str) -> str:
    value = identifier.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _uids(identifier: Dataset, keyword: str) -> tuple[str, ...]:
    value = identifier.get(keyword)
    if value is None or value == "":
        return ()
    values = value if isinstance(value, MultiValue) else str(value).split("\\")
    return tuple(str(v).strip() for v in values if str(v).strip())


def _date_range(text: str) -> tuple[str, str]:
    """``A``, ``A-B``, ``A-`` or ``-B`` (PS3.4 C.2.2.2.5) as an inclusive (from, to); "" is open."""
    if not text:
        return "", ""
    start, dash, end = text.partition("-")
    if not dash:
        return start, start
    for part in (start, end):
        if part and not (len(part) == 8 and part.isdigit()):
            raise InvalidRequest(f"date range {text[:40]!r} is not YYYYMMDD-YYYYMMDD")
    return start, end


def query_level(identifier: Dataset, allowed: tuple[QueryLevel, ...]) -> QueryLevel:
    """The Query/Retrieve Level (0008,0052); InvalidRequest when missing or not offered by the model."""
    text = _text(identifier, LEVEL_KEYWORD).upper()
    try:
        level = QueryLevel(text)
    except ValueError:
        raise InvalidRequest(f"Query/Retrieve Level {text[:20]!r} is not PATIENT, STUDY, SERIES or IMAGE") from None
    if level not in allowed:
        raise InvalidRequest(f"Query/Retrieve Level {level} is not offered by this information model")
    return level


def find_query(identifier: Dataset, level: QueryLevel, limit: int = MAX_LIMIT) -> FindQuery:
    """The index query for a C-FIND or C-GET identifier at ``level``."""
    depth = list(QueryLevel).index(level)
    study_date_from, study_date_to = _date_range(_text(identifier, "StudyDate")) if depth >= 1 else ("", "")
    modality = _text(identifier, "Modality") if depth >= 2 else ""
    if depth == 1:
        modality = _text(identifier, "ModalitiesInStudy").split("\\")[0]
    return FindQuery(
        level=level,
        patient_id=_text(identifier, "PatientID"),
        patient_name=_text(identifier, "PatientName"),
        study_instance_uids=_uids(identifier, "StudyInstanceUID") if depth >= 1 else (),
        study_date_from=study_date_from,
        study_date_to=study_date_to,
        accession_number=_text(identifier, "AccessionNumber") if depth >= 1 else "",
        study_description=_text(identifier, "StudyDescription") if depth >= 1 else "",
        modality=modality,
        series_instance_uids=_uids(identifier, "SeriesInstanceUID") if depth >= 2 else (),
        sop_instance_uids=_uids(identifier, "SOPInstanceUID") if depth >= 3 else (),
        sop_class_uids=_uids(identifier, "SOPClassUID") if depth >= 3 else (),
        limit=limit,
    )


def find_response(identifier: Dataset, match: FindMatch) -> Dataset:
    """The pending response's identifier: every key the request asked for, with the match's values."""
    answer = Dataset()
    for element in identifier:
        keyword = element.keyword
        if not keyword or element.tag.group == 0x0002 or keyword == "SpecificCharacterSet":
            continue
        if keyword == LEVEL_KEYWORD:
            answer.QueryRetrieveLevel = identifier.QueryRetrieveLevel
            continue
        field = ANSWERED.get(keyword)
        value = getattr(match, field) if field else None
        if keyword == "ModalitiesInStudy" and value:
            value = str(value).split("\\")
        answer.add_new(element.tag, element.VR, "" if value is None else value)
    answer.SpecificCharacterSet = "ISO_IR 192"  # the index holds text as Unicode: answered as UTF-8
    return answer
