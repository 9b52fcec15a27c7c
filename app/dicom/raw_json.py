"""The DICOM JSON model (PS3.18 F.2) of common elements straight from their encoded bytes.

Converting a raw element through pydicom (hooks, converters, ``DSfloat``/``IS`` objects, a
``DataElement``) cost 4-10 us per element, most of :func:`app.dicom.header_json.header_json` at
upload. For the VRs that make up most headers this builds the same model from the bytes directly,
following pydicom's own converters (``pydicom.values``) step by step:

* US, SS, UL, SL, UV, SV, FL, FD: ``struct`` as ``convert_numbers`` unpacks them (JSON Numbers; FL/FD
  NaN and infinities as :data:`app.dicom.simple_json.NON_FINITE`);
* DS and IS: the text of each value as written, stripped (PS3.18 F.2.3), empty values as ``null``;
* AS, CS, DA, DT, TM, UI, SH, LO, UC, ST, LT, UT: JSON Strings, split and stripped as pydicom does.

Anything unusual returns ``None`` and the caller converts through pydicom as before: an implicit or
``UN`` VR, a value whose length is odd for its VR, a DS or IS value ``float``/``int`` refuses (kept
as today, as UN bytes), text that is not plain ASCII or whose character set may not read ASCII
as ASCII, the LUT Descriptors pydicom adjusts, pydicom settings that change the converters.
``tests/dicom/test_raw_json.py`` checks the equality on every bundled pydicom file and edge cases.
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom import config
from pydicom.charset import default_encoding, python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement

from app.dicom.simple_json import json_number

#: struct format of each binary number VR (PS3.5 Table 6.2-1), as ``pydicom.values.converters``.
NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q", "FL": "f", "FD": "d"}
#: Values split at backslashes and stripped of trailing spaces and NULs as a whole (``multi_string``).
STRING_VRS = frozenset({"AS", "CS", "DA", "DT", "TM"})
#: Values split at backslashes, each stripped of trailing spaces and NULs (``convert_text``).
TEXT_VRS = frozenset({"SH", "LO", "UC"})
#: One value, backslashes included (``convert_single_string``).
SINGLE_TEXT_VRS = frozenset({"ST", "LT", "UT"})
#: Text decoded with the data set's character set; the others with the default repertoire.
CHARSET_VRS = TEXT_VRS | SINGLE_TEXT_VRS
ASCII_VRS = STRING_VRS | CHARSET_VRS | {"DS", "IS", "UI"}
#: LUT Descriptors (PS3.3 C.11.1.1): pydicom rewrites their first value, so they take its path.
LUT_DESCRIPTOR_TAGS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
#: Character sets (PS3.3 C.12.1.1.2) that decode every 7-bit byte but ESC as ASCII (ISO 646 G0), by their
#: defined terms and by the Python codec names a parsed data set holds them as (pydicom's ``python_encoding``:
#: ``original_character_set`` of an ISO_IR 100 file is ``["latin_1"]``, so the defined terms alone missed it).
ASCII_CHARSET_TERMS = ("", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 6")
ASCII_CHARSETS = frozenset({default_encoding, *ASCII_CHARSET_TERMS, *(python_encoding[t] for t in ASCII_CHARSET_TERMS)})
ESC = 0x1B
#: Integers that ``float`` holds exactly: within them pydicom's IS keeps an ``int`` (no ISfloat).
EXACT_INT = 2**53

Model = dict[str, Any]


def ascii_text(charset: str | list[str] | Any) -> bool:
    """Whether every value of a data set with Specific Character Set ``charset`` reads plain ASCII bytes as ASCII."""
    names = [charset] if isinstance(charset, str) else list(charset or [""])
    return all(isinstance(name, str) and name.strip() in ASCII_CHARSETS for name in names)


def _strings(vr: str, items: list[str]) -> Model:
    """As :func:`app.dicom.simple_json.simple_element_json` writes a str or a MultiValue of them."""
    if len(items) == 1:
        return {"vr": vr} if items[0] == "" else {"vr": vr, "Value": items}
    return {"vr": vr, "Value": items}


def _numbers(vr: str, data: bytes, little_endian: bool) -> Model | None:
    fmt = NUMBER_FORMATS[vr]
    size = struct.calcsize("=" + fmt)
    if len(data) % size:
        return None  # pydicom warns and keeps it as UN
    values = struct.unpack(f"{'<' if little_endian else '>'}{len(data) // size}{fmt}", data)
    if fmt in "fd":
        return {"vr": vr, "Value": [json_number(value) for value in values]}
    return {"vr": vr, "Value": list(values)}


def _number_text(vr: str, text: str) -> Model | None:
    """DS (``multi_string(text.strip(), DSfloat)``) and IS (``multi_string(text, IS)``): str of each value."""
    items = (text.strip() if vr == "DS" else text).rstrip(" \x00").split("\\")
    if len(items) == 1 and items[0] == "":
        return {"vr": vr}
    values: list[str | None] = []
    for item in items:
        if item == "":
            values.append(None)
            continue
        stripped = item.strip()
        if not stripped:
            return None  # pydicom keeps the blanks themselves
        try:
            if vr == "DS":
                float(item)
            elif abs(int(item)) >= EXACT_INT:
                return None
        except (ValueError, OverflowError):
            return None  # pydicom refuses it (kept as UN) or reads "1.0" as an IS: its path decides
        values.append(stripped)
    return {"vr": vr, "Value": values}


def _text(vr: str, text: str) -> Model:
    if vr in STRING_VRS:
        return _strings(vr, text.rstrip(" \x00").split("\\"))
    if vr == "UI":
        return _strings(vr, text.rstrip("\x00 ").rstrip(" \x00").split("\\"))
    if vr in TEXT_VRS:
        return _strings(vr, [item.rstrip("\x00 ") for item in text.split("\\")])
    return _strings(vr, [text.rstrip("\x00 ")])  # ST, LT, UT


def pydicom_defaults() -> bool:
    """Whether pydicom's converters are configured as this module follows them (checked once per header)."""
    return not (
        config.use_DS_numpy
        or config.use_IS_numpy
        or config.use_DS_decimal
        or config.datetime_conversion
        or config.settings.reading_validation_mode == config.RAISE
        or config.use_none_as_empty_text_VR_value
    )


def _vr_of(raw: RawDataElement) -> str | None:
    """The explicit VR, or for an implicit one a public tag's VR from the data dictionary (PS3.6), as
    pydicom's ``raw_element_vr`` looks it up; None for UN, private tags and ambiguous VRs."""
    if raw.VR is not None:
        return None if raw.VR == "UN" else str(raw.VR)
    if raw.tag.is_private:
        return None
    try:
        return str(dictionary_VR(raw.tag))
    except KeyError:
        return None


def raw_json(raw: RawDataElement, ascii_charset: bool) -> Model | None:
    """The JSON model of ``raw`` as pydicom's conversion would build it, or None (then convert it).

    ``ascii_charset``: :func:`ascii_text` of the data set's character set. The caller checks
    :func:`pydicom_defaults` first.
    """
    data = raw.value
    if not isinstance(data, bytes) or raw.length != len(data) or raw.tag in LUT_DESCRIPTOR_TAGS:
        return None
    vr = _vr_of(raw)
    if vr is None:
        return None
    if vr in NUMBER_FORMATS:
        if not data:
            return {"vr": vr}
        return _numbers(vr, data, raw.is_little_endian)
    if vr not in ASCII_VRS:
        return None
    if not data:
        return {"vr": vr}
    if not (data.isascii() and ESC not in data and (ascii_charset or vr not in CHARSET_VRS)):
        return None
    text = data.decode("ascii")
    if vr in ("DS", "IS"):
        return _number_text(vr, text)
    return _text(vr, text)
