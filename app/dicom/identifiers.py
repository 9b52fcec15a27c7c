"""The UIDs that identify an instance, taken as the identifiers they are (PS3.5 §9.1, PS3.3 C.12.1).

A conformant UID is 1-64 characters of digits and dots, components without leading zeros.
Real archives hold others (hexadecimal digests, leading zeros, space padding, 100 characters),
and DCMTK, pydicom and Orthanc store them. So do we: the value, less its trailing NUL or space
padding (PS3.5 §6.2), is the identifier, and each departure from §9.1 is reported as a warning.
Refused are only values that cannot serve as an identifier: missing or empty (for the SOP
Instance UID), several values (a backslash, PS3.5 §6.4), control characters, or longer than
the index keeps (:data:`MAX_UID_LENGTH`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from app.errors import InvalidDicom

#: The index columns hold identifiers up to this many characters (four times PS3.5's 64).
MAX_UID_LENGTH = 256
CONFORMANT_LENGTH = 64  # PS3.5 §9.1
_COMPONENT = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

SOP_CLASS = (0x00080016, "SOP Class UID (0008,0016)")
SOP_INSTANCE = (0x00080018, "SOP Instance UID (0008,0018)")
STUDY = (0x0020000D, "Study Instance UID (0020,000D)")
SERIES = (0x0020000E, "Series Instance UID (0020,000E)")
META_SOP_CLASS = (0x00020002, "Media Storage SOP Class UID (0002,0002)")
META_SOP_INSTANCE = (0x00020003, "Media Storage SOP Instance UID (0002,0003)")


@dataclass(frozen=True)
class Identity:
    """The identifiers an instance is indexed by, and what was non-conformant about them."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    warnings: tuple[str, ...] = ()


def _raw_text(source: Dataset, tag: int) -> str | None:
    """The element's value as written (Latin-1, as pydicom decodes UI), or None when absent."""
    if tag not in source:
        return None
    elem = source.get_item(tag)  # reads a deferred value, converts nothing
    if isinstance(elem, RawDataElement):
        value = elem.value
        return "" if value is None else bytes(value).decode("latin-1")
    assert isinstance(elem, DataElement)
    if isinstance(elem.value, (MultiValue, list)):
        return "\\".join(str(v) for v in elem.value)
    return "" if elem.value is None else str(elem.value)


def _checked(text: str, name: str) -> tuple[str, list[str]]:
    """Strip the padding; refuse what cannot identify; list what is not a conformant UID."""
    value = text.rstrip("\x00 ")
    if "\\" in value:
        raise InvalidDicom(f"the {name} holds several values (a backslash): it cannot identify the instance")
    if _CONTROL.search(value):
        raise InvalidDicom(f"the {name} contains control characters: it cannot identify the instance")
    if len(value) > MAX_UID_LENGTH:
        raise InvalidDicom(
            f"the {name} is {len(value)} characters long: longer than the {MAX_UID_LENGTH} this service indexes"
        )
    problems = []
    if text.rstrip("\x00") != text.rstrip("\x00 "):
        problems.append("is padded with spaces (UI pads with one NUL, PS3.5 §6.2)")
    if len(value) > CONFORMANT_LENGTH:
        problems.append(f"is {len(value)} characters long (at most {CONFORMANT_LENGTH}, PS3.5 §9.1)")
    components = value.split(".")
    if any(not c.isascii() or not (c.isdigit() or c == "") for c in components):
        problems.append("holds characters other than digits and dots (PS3.5 §9.1)")
    elif not all(_COMPONENT.fullmatch(c) for c in components):
        problems.append("has an empty component or one with a leading zero (PS3.5 §9.1)")
    return value, [f"the {name} {problem}; it is kept as written" for problem in problems]


def _uid(
    dataset: Dataset, meta: Dataset, main: tuple[int, str], fallback: tuple[int, str] | None
) -> tuple[str, list[str]]:
    """The data set's value, else the File Meta's; ``("", [])`` when neither holds one."""
    candidates = [(dataset, main)] + ([(meta, fallback)] if fallback is not None else [])
    for source, (tag, name) in candidates:
        text = _raw_text(source, tag)
        if text is not None and text.rstrip("\x00 "):
            return _checked(text, name)
    return "", []


def identity(dataset: Dataset) -> Identity:
    """Read and judge the identifying UIDs of ``dataset`` (File Meta as fallback for the SOP UIDs)."""
    meta = getattr(dataset, "file_meta", None) or Dataset()
    sop_class, class_warnings = _uid(dataset, meta, SOP_CLASS, META_SOP_CLASS)
    sop_instance, instance_warnings = _uid(dataset, meta, SOP_INSTANCE, META_SOP_INSTANCE)
    if not sop_class or not sop_instance:
        raise InvalidDicom("the data set carries no SOP Class UID and SOP Instance UID: it is not a DICOM instance")
    study, study_warnings = _uid(dataset, meta, STUDY, None)
    series, series_warnings = _uid(dataset, meta, SERIES, None)
    warnings = class_warnings + instance_warnings + study_warnings + series_warnings
    in_meta = _raw_text(meta, META_SOP_INSTANCE[0])
    if in_meta is not None and in_meta.rstrip("\x00 ") and in_meta.rstrip("\x00 ") != sop_instance:
        warnings.append(
            f"the {META_SOP_INSTANCE[1]} differs from the {SOP_INSTANCE[1]}; the instance is identified by the latter"
        )
    return Identity(sop_class, sop_instance, study, series, tuple(warnings))
