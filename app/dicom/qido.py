"""QIDO-RS queries (PS3.18 §10.6): which attributes match at which level, how a value matches, what returns.

A query parameter names an attribute by keyword or by tag (``PatientName``, ``00100010``) and
carries its value already percent-decoded. Matching follows PS3.4 C.2.2.2: an empty value matches
everything, ``*``/``?`` are wildcards, a comma-separated UID list matches any of its UIDs, dates
and times match ranges (``A-B``, ``A-``, ``-B``), person names ignore case (PS3.18 §8.3.4.1 lets
the origin server choose). Fuzzy matching is not offered (``fuzzymatching=true`` is answered
with a warning and literal matching, as PS3.18 §8.3.4.1 prescribes).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from app.errors import InvalidRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class Level(enum.StrEnum):
    """Query/retrieve levels of PS3.4 C.6.1.1.1 (the patient level is folded into the study)."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


LEVEL_ORDER = {Level.STUDY: 0, Level.SERIES: 1, Level.INSTANCE: 2}


class MatchKind(enum.StrEnum):
    """How a value is compared (PS3.4 C.2.2.2)."""

    UID = "uid"  # single value or UID list matching
    TEXT = "text"  # single value or wildcard matching
    PERSON_NAME = "person-name"  # as TEXT, ignoring case
    DATE = "date"  # single value or range matching
    TIME = "time"  # single value or range matching
    NUMBER = "number"  # single value matching of an IS
    ANY_OF = "any-of"  # a multi-valued attribute (Modalities in Study) holding any of the values


@dataclass(frozen=True)
class MatchingKey:
    keyword: str
    level: Level
    kind: MatchKind


#: The matching keys the index answers: PS3.18 Table 10.6.1-5 plus Study/Series Description and birth date.
MATCHING_KEYS: dict[str, MatchingKey] = {
    key.keyword: key
    for key in (
        MatchingKey("StudyDate", Level.STUDY, MatchKind.DATE),
        MatchingKey("StudyTime", Level.STUDY, MatchKind.TIME),
        MatchingKey("AccessionNumber", Level.STUDY, MatchKind.TEXT),
        MatchingKey("ModalitiesInStudy", Level.STUDY, MatchKind.ANY_OF),
        MatchingKey("ReferringPhysicianName", Level.STUDY, MatchKind.PERSON_NAME),
        MatchingKey("PatientName", Level.STUDY, MatchKind.PERSON_NAME),
        MatchingKey("PatientID", Level.STUDY, MatchKind.TEXT),
        MatchingKey("PatientBirthDate", Level.STUDY, MatchKind.DATE),
        MatchingKey("StudyInstanceUID", Level.STUDY, MatchKind.UID),
        MatchingKey("StudyID", Level.STUDY, MatchKind.TEXT),
        MatchingKey("StudyDescription", Level.STUDY, MatchKind.TEXT),
        MatchingKey("Modality", Level.SERIES, MatchKind.TEXT),
        MatchingKey("SeriesInstanceUID", Level.SERIES, MatchKind.UID),
        MatchingKey("SeriesNumber", Level.SERIES, MatchKind.NUMBER),
        MatchingKey("SeriesDescription", Level.SERIES, MatchKind.TEXT),
        MatchingKey("PerformedProcedureStepStartDate", Level.SERIES, MatchKind.DATE),
        MatchingKey("PerformedProcedureStepStartTime", Level.SERIES, MatchKind.TIME),
        MatchingKey("SOPClassUID", Level.INSTANCE, MatchKind.UID),
        MatchingKey("SOPInstanceUID", Level.INSTANCE, MatchKind.UID),
        MatchingKey("InstanceNumber", Level.INSTANCE, MatchKind.NUMBER),
    )
}

#: Attributes returned by default (PS3.18 Tables 10.6.3-3, -4 and -5), by keyword.
STUDY_RETURN = (
    "SpecificCharacterSet",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "TimezoneOffsetFromUTC",
    "RetrieveURL",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_RETURN = (
    "SpecificCharacterSet",
    "Modality",
    "TimezoneOffsetFromUTC",
    "SeriesDescription",
    "RetrieveURL",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
)
INSTANCE_RETURN = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "TimezoneOffsetFromUTC",
    "RetrieveURL",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
)
RETURN_KEYWORDS = {Level.STUDY: STUDY_RETURN, Level.SERIES: SERIES_RETURN, Level.INSTANCE: INSTANCE_RETURN}

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_UID = re.compile(r"^[^\x00-\x1f\x7f\\,]{1,256}$")  # opaque identifiers, as ingest keeps them
MAX_VALUE = 256


@dataclass(frozen=True)
class Match:
    """One matching key with its value: ``values`` for single/wildcard/list matching, or a range."""

    keyword: str
    kind: MatchKind
    values: tuple[str, ...] = ()
    low: str | None = None
    high: str | None = None


@dataclass(frozen=True)
class SearchQuery:
    """A parsed QIDO-RS request; ``study_uid``/``series_uid`` come from the path."""

    level: Level
    matches: tuple[Match, ...] = ()
    study_uid: str | None = None
    series_uid: str | None = None
    include_all: bool = False
    include: tuple[int, ...] = ()  # extra tags asked for with includefield
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    warnings: tuple[str, ...] = field(default=(), compare=False)


def keyword_of(name: str) -> str:
    """A keyword, or an 8-hex-digit tag, as its keyword; :class:`InvalidRequest` when neither."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        keyword = keyword_for_tag(int(name, 16))
        if keyword:
            return str(keyword)
        raise InvalidRequest(f"{name} is not an attribute of the DICOM data dictionary")
    if tag_for_keyword(name) is None:
        raise InvalidRequest(f"{name[:64]!r} is not a DICOM keyword or tag (ggggeeee): see PS3.6")
    return name


def tag_of(name: str) -> int:
    number = tag_for_keyword(keyword_of(name))
    assert number is not None
    return int(number)


def _range(keyword: str, text: str, pattern: re.Pattern[str], what: str) -> Match:
    low, dash, high = text.partition("-")
    for part in (low, high):
        if part and not pattern.match(part):
            raise InvalidRequest(f"{keyword} {text!r} is not a {what} or a range of them (A-B, A-, -B)")
    if not dash:
        return Match(keyword, MatchKind.DATE if what == "date" else MatchKind.TIME, (low,))
    if not low and not high:
        raise InvalidRequest(f"{keyword}: a range needs at least one end")
    if low and high and low > high:
        raise InvalidRequest(f"{keyword} range {text!r} starts after it ends")
    kind = MatchKind.DATE if what == "date" else MatchKind.TIME
    return Match(keyword, kind, (), low or None, high or None)


def parse_match(key: MatchingKey, text: str) -> Match | None:
    """The match a value asks for; None for universal matching (an empty value or ``*``)."""
    if len(text) > MAX_VALUE:
        raise InvalidRequest(f"the value of {key.keyword} is longer than {MAX_VALUE} characters")
    if "\x00" in text:  # no stored value holds one (PostgreSQL's text cannot): refused on every index alike
        raise InvalidRequest(f"the value of {key.keyword} holds a NUL character")
    if text in ("", "*"):
        return None
    if key.kind is MatchKind.UID:
        uids = tuple(uid.strip() for uid in re.split(r"[,\\]", text))
        if not all(_UID.match(uid) for uid in uids):
            raise InvalidRequest(f"{key.keyword} must be a UID or a comma-separated list of UIDs")
        return Match(key.keyword, key.kind, uids)
    if key.kind is MatchKind.DATE:
        return _range(key.keyword, text, _DATE, "date")
    if key.kind is MatchKind.TIME:
        return _range(key.keyword, text, _TIME, "time")
    if key.kind is MatchKind.NUMBER:
        if not re.fullmatch(r"[+-]?\d{1,10}", text.strip()):
            raise InvalidRequest(f"{key.keyword} must be an integer")
        return Match(key.keyword, key.kind, (str(int(text)),))
    if key.kind is MatchKind.ANY_OF:
        return Match(key.keyword, key.kind, tuple(v.strip() for v in re.split(r"[,\\]", text) if v.strip()))
    return Match(key.keyword, key.kind, (text,))


def _include(values: list[str]) -> tuple[bool, tuple[int, ...]]:
    tags: list[int] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name == "all":
                return True, ()
            if "." in name:
                raise InvalidRequest(f"includefield {name[:64]!r}: nested attributes are not supported")
            tags.append(tag_of(name))
    return False, tuple(tags)


def _number(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}")
    return value


def parse_search(
    level: Level, params: list[tuple[str, str]], study_uid: str | None = None, series_uid: str | None = None
) -> SearchQuery:
    """Parse the query parameters of a QIDO-RS request (PS3.18 §8.3.4, §10.6.1.2)."""
    matches: list[Match] = []
    ignored: list[str] = []
    include_values: list[str] = []
    limit, offset, fuzzy = DEFAULT_LIMIT, 0, False
    for name, value in params:
        if name == "limit":
            limit = _number("limit", value, 1, MAX_LIMIT)
        elif name == "offset":
            offset = _number("offset", value, 0, 2**31)
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise InvalidRequest("fuzzymatching must be true or false")
            fuzzy = value == "true"
        elif name == "includefield":
            include_values.append(value)
        else:
            if "." in name:  # a sequence path (RequestAttributesSequence.RequestedProcedureID): not indexed here
                ignored.append(".".join(keyword_of(part) for part in name.split(".")[:4]))
                continue
            keyword = keyword_of(name)
            key = MATCHING_KEYS.get(keyword)
            if key is None or LEVEL_ORDER[key.level] > LEVEL_ORDER[level]:
                ignored.append(keyword)
                continue
            match = parse_match(key, value)
            if match is not None:
                matches.append(match)
    include_all, include = _include(include_values)
    warnings = []
    if fuzzy:
        warnings.append("The fuzzymatching parameter is not supported. Only literal matching has been performed.")
    if ignored:
        warnings.append("These attributes are not supported as matching keys and were ignored: " + ", ".join(ignored))
    return SearchQuery(
        level, tuple(matches), study_uid, series_uid, include_all, include, limit, offset, tuple(warnings)
    )


def vr_of(keyword: str) -> str:
    """The dictionary VR of ``keyword`` (the first when several are possible)."""
    number = tag_for_keyword(keyword)
    assert number is not None
    return str(dictionary_VR(number)).split(" ")[0]
