"""One QIDO-RS result as a DICOM JSON data set (PS3.18 §10.6.3.3, Annex F).

The return attributes of the level (PS3.18 Tables 10.6.3-3/4/5) plus those asked for with
``includefield`` come from the representative instance's stored header; the index supplies what
no single instance knows: Modalities in Study, the related series/instance counts, and the
Retrieve URL (0008,1190) is built from the service's base URL. Bulk values are never returned.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydicom.datadict import tag_for_keyword

from app.dicom.header_json import Header
from app.dicom.qido import RETURN_KEYWORDS, Level, SearchQuery

COMPUTED = {
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances",
    "RetrieveURL",
    "InstanceAvailability",
}
#: Attributes of the levels above that every result carries, so a client can address what it found.
IDENTIFIERS = {
    Level.STUDY: ("StudyInstanceUID",),
    Level.SERIES: ("StudyInstanceUID", "SeriesInstanceUID"),
    Level.INSTANCE: ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}


_TOP_KEY = re.compile(r',\s*"([0-9A-F]{8})":\s*\{')


def needed_up_to(query: SearchQuery) -> str | None:
    """The last key a result of ``query`` can take from a header, or None when it takes everything."""
    if query.include_all:
        return None
    keys = [_key(k) for k in (*IDENTIFIERS[query.level], *RETURN_KEYWORDS[query.level]) if k not in COMPUTED]
    return max([*keys, *(f"{tag:08X}" for tag in query.include)])


def parse_header(text: str, last_key: str | None) -> Header:
    """A stored header, parsed only up to ``last_key`` when given.

    Stored headers are DICOM JSON with their top-level keys in ascending order, and the bulky parts
    (Per-frame Functional Groups (5200,9230), SR content, Pixel Data) come after every key a search
    returns; stopping at the first key past ``last_key`` skips them. If the cut falls inside a
    sequence (a nested key past ``last_key``), the prefix is not valid JSON and the whole is parsed.
    """
    if last_key is not None:
        for match in _TOP_KEY.finditer(text):
            if match.group(1) > last_key:
                try:
                    prefix: Header = json.loads(text[: match.start()] + "}")
                    return prefix
                except ValueError:
                    break
    whole: Header = json.loads(text)
    return whole


def _key(keyword: str) -> str:
    number = tag_for_keyword(keyword)
    assert number is not None, keyword
    return f"{number:08X}"


def retrieve_url(base_url: str, study: str, series: str = "", instance: str = "") -> str:
    url = f"{base_url}/studies/{study}"
    if series:
        url += f"/series/{series}"
    if instance:
        url += f"/instances/{instance}"
    return url


def result_json(
    query: SearchQuery,
    header: Header,
    base_url: str,
    ids: tuple[str, str, str],
    modalities: str,
    related_series: int,
    related_instances: int,
) -> dict[str, Any]:
    """The JSON data set of one result; ``ids`` are its study, series and SOP instance UIDs."""
    level = query.level
    study, series, instance = ids
    wanted = [_key(k) for k in (*IDENTIFIERS[level], *RETURN_KEYWORDS[level]) if k not in COMPUTED]
    wanted += [f"{tag:08X}" for tag in query.include]
    if query.include_all:
        wanted += [key for key in header if not key.startswith("0002")]
    out: dict[str, Any] = {}
    for key in wanted:
        entry = header.get(key)
        if entry is not None and "BulkDataURI" not in entry:
            out[key] = entry
    out[_key("InstanceAvailability")] = {"vr": "CS", "Value": ["ONLINE"]}
    if level is Level.STUDY:
        out[_key("ModalitiesInStudy")] = {"vr": "CS", "Value": modalities.split("\\")} if modalities else {"vr": "CS"}
        out[_key("NumberOfStudyRelatedSeries")] = {"vr": "IS", "Value": [related_series]}
        out[_key("NumberOfStudyRelatedInstances")] = {"vr": "IS", "Value": [related_instances]}
    elif level is Level.SERIES:
        out[_key("NumberOfSeriesRelatedInstances")] = {"vr": "IS", "Value": [related_instances]}
    out[_key("RetrieveURL")] = {"vr": "UR", "Value": [retrieve_url(base_url, study, series, instance)]}
    return dict(sorted(out.items()))
