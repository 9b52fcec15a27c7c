"""Media type negotiation of DICOMweb retrieve (PS3.18 §8.7): which representation a client accepts.

``Accept`` lists media ranges with ``q`` weights (RFC 9110 12.5.1); DICOMweb adds multipart
payloads (``multipart/related; type="application/dicom"``) and a ``transfer-syntax`` parameter
(PS3.18 §8.7.3.5.2), where ``*`` means "as stored". The default of a retrieve is Explicit VR
Little Endian (PS3.18 Table 8.7.3-2); frames default to their stored encoding when the client
accepts anything (``*/*``, which dicomweb-client sends by default).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from app.dicom.frames import COMPRESSED_MEDIA_TYPES, EXPLICIT_LITTLE, MEDIA_TYPE_ALIASES, OCTET_STREAM
from app.errors import NotAcceptable

DICOM = "application/dicom"
ZIP = "application/zip"
DICOM_JSON = "application/dicom+json"
_RANGE_SPLIT = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')
_PARAM_SPLIT = re.compile(r';(?=(?:[^"]*"[^"]*")*[^"]*$)')
MAX_ACCEPT = 4096


@dataclass(frozen=True)
class MediaRange:
    """One acceptable representation: the (part) media type, its transfer syntax, its weight."""

    media_type: str
    transfer_syntax: str | None = None
    q: float = 1.0
    multipart: bool = False

    def accepts(self, media_type: str) -> bool:
        kind, _, _sub = media_type.partition("/")
        return self.media_type in ("*/*", media_type, f"{kind}/*")


ANYTHING = MediaRange("*/*")


def parse_accept(text: str | None) -> list[MediaRange]:
    """The media ranges of an ``Accept`` value, best first; absent or empty means ``*/*``."""
    if not text or not text.strip():
        return [ANYTHING]
    if len(text) > MAX_ACCEPT:
        raise NotAcceptable("the Accept header is too long")
    ranges: list[MediaRange] = []
    for item in _RANGE_SPLIT.split(text):
        head, *parameters = (part.strip() for part in _PARAM_SPLIT.split(item))
        if not head:
            continue
        params: dict[str, str] = {}
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            params[name.strip().lower()] = value.strip().strip('"').strip()
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if q <= 0:
            continue
        media_type = head.lower()
        multipart = media_type == "multipart/related"
        if multipart:
            media_type = params.get("type", "*/*").lower() or "*/*"
        media_type = MEDIA_TYPE_ALIASES.get(media_type, media_type)
        ranges.append(MediaRange(media_type, params.get("transfer-syntax"), q, multipart))
    ranges.sort(key=lambda r: -r.q)  # stable: equal weights keep the client's order
    return ranges or [ANYTHING]


def retrieve_syntax(ranges: list[MediaRange]) -> str:
    """The transfer syntax of a study/series/instance retrieve: ``*`` (as stored) or a UID."""
    for media in ranges:
        if media.accepts(DICOM):
            return media.transfer_syntax or EXPLICIT_LITTLE
    raise NotAcceptable('this resource is served as multipart/related; type="application/dicom"')


def zip_range(ranges: list[MediaRange]) -> MediaRange | None:
    """The ``application/zip`` range (PS3.18 §8.7.3, Supplement 211) when the client prefers a ZIP to
    ``multipart/related; type="application/dicom"``; None for the multipart default (``*/*`` included)."""
    for media in ranges:
        if media.media_type == ZIP and not media.multipart:
            return media
        if media.accepts(DICOM):
            return None
    return None


class FrameEncoding(enum.Enum):
    STORED = "stored"  # the compressed bitstream in its media type, or native little-endian bytes
    STORED_AS_OCTETS = "stored-as-octets"  # the same bytes labelled application/octet-stream; transfer-syntax=...
    DECODED = "decoded"  # decompressed stored values, little endian


def frame_encoding(ranges: list[MediaRange], stored_syntax: str) -> FrameEncoding:
    """How to send frames of an instance stored in ``stored_syntax`` (PS3.18 §8.7.3.5.3)."""
    compressed_type = COMPRESSED_MEDIA_TYPES.get(stored_syntax)
    for media in ranges:
        if media.transfer_syntax == "*" and media.media_type == OCTET_STREAM:
            # cornerstone's WADO-RS loader (OHIF) asks this: any syntax, labelled by its transfer-syntax parameter
            return FrameEncoding.STORED_AS_OCTETS
        if media.transfer_syntax == "*" or media.media_type == "*/*":
            return FrameEncoding.STORED
        if media.accepts(OCTET_STREAM):
            if compressed_type is None:
                return FrameEncoding.STORED
            if media.transfer_syntax in (None, EXPLICIT_LITTLE):
                return FrameEncoding.DECODED
        accepted = compressed_type is not None and media.accepts(compressed_type)
        if accepted and media.transfer_syntax in (None, stored_syntax):
            return FrameEncoding.STORED
    stored = compressed_type or OCTET_STREAM
    raise NotAcceptable(
        f"the frames are stored as {stored} (transfer syntax {stored_syntax}); accept it, "
        'multipart/related; type="application/octet-stream" for decoded frames, or transfer-syntax=*'
    )


def rendered_type(ranges: list[MediaRange]) -> str:
    """``image/jpeg`` (the default of PS3.18 §8.7.4) or ``image/png``."""
    for media in ranges:
        for candidate in ("image/jpeg", "image/png"):
            if media.accepts(candidate):
                return candidate
    raise NotAcceptable("rendered images are served as image/jpeg or image/png")


def check_json(ranges: list[MediaRange]) -> None:
    """Metadata and search results are ``application/dicom+json`` (``application/json`` accepted too)."""
    if any(media.accepts(DICOM_JSON) or media.accepts("application/json") for media in ranges):
        return
    raise NotAcceptable("this resource is served as application/dicom+json (XML is not offered)")
