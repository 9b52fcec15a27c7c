"""Parse the tag spellings people type into a DICOM tag (PS3.5 §7.1.1).

Accepted: ``(0002,0002)``, ``0002,0002``, ``00020002``, any hex case, with or without
spaces, and a data dictionary keyword such as ``PatientName``.
"""

from __future__ import annotations

import functools
import re

from pydicom.datadict import tag_for_keyword
from pydicom.tag import BaseTag, Tag

from app.errors import InvalidRequest

_HEX_PAIR = re.compile(r"^(\(\s*)?([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})(?(1)\s*\))$")
_HEX_FLAT = re.compile(r"^(\()?([0-9A-Fa-f]{8})(?(1)\))$")
_KEYWORD = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
MAX_TAG_TEXT = 128


def parse_tag(text: str) -> BaseTag:
    """Return the tag a caller means, or raise :class:`InvalidRequest` saying what is accepted.

    Remembered (a lookup parses its tag once or twice; refusals are not cached): ~3 % of a cached
    lookup. Only short texts are remembered, whatever the caller let through.
    """
    return _parse_remembered(text) if len(text) <= MAX_TAG_TEXT else _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse_remembered(text: str) -> BaseTag:
    return _parse(text)


def _parse(text: str) -> BaseTag:
    candidate = text.strip()
    if len(candidate) > MAX_TAG_TEXT:
        raise InvalidRequest("tag is too long: use (gggg,eeee) or a DICOM keyword")
    if match := _HEX_PAIR.match(candidate):
        return Tag(int(match.group(2), 16), int(match.group(3), 16))
    if match := _HEX_FLAT.match(candidate):
        return Tag(int(match.group(2), 16))
    if _KEYWORD.match(candidate):
        number = tag_for_keyword(candidate)
        if number is not None:
            return Tag(number)
        raise InvalidRequest(f"unknown DICOM keyword {candidate!r}: use (gggg,eeee) or a keyword such as PatientName")
    raise InvalidRequest(
        f"malformed tag {text!r}: use (gggg,eeee) with 4 hex digits each, gggg,eeee, ggggeeee or a keyword"
    )


def format_tag(tag: BaseTag) -> str:
    """The conventional ``(GGGG,EEEE)`` spelling."""
    return f"({tag.group:04X},{tag.element:04X})"
