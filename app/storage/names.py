"""Server-made stored names: ``<uuid4>-<safe base name>.dcm``.

The client's file name is untrusted: only its base name survives, reduced to letters,
digits and ``._+-``, without control or bidi characters, bounded in length. A name a
caller sends back is accepted only if it has exactly this shape, so it can never
address anything outside the storage folder.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

from app.errors import FileNotFound

MAX_BASE_CHARS = 120
_UNSAFE = re.compile(r"[^\w.+-]+")
_UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_STORED = re.compile(rf"^{_UUID4}-[\w.+-]{{1,{MAX_BASE_CHARS + 4}}}\.(?i:dcm)$", re.ASCII)


def safe_base_name(original: str | None) -> str:
    """A harmless base name from whatever the client sent (path parts, NUL, RTL overrides, ...)."""
    text = unicodedata.normalize("NFKC", original or "")
    text = re.split(r"[\\/]", text)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", text).strip("._ ")
    return text[:MAX_BASE_CHARS] or "file"


def new_stored_name(original: str | None) -> str:
    """``<uuid4>-<base>.dcm``; ``.dcm`` is appended only when the base does not already end with it."""
    base = safe_base_name(original)
    if not base.lower().endswith(".dcm"):
        base += ".dcm"
    return f"{uuid.uuid4()}-{base}"


def is_stored_name(name: str) -> bool:
    return bool(_STORED.fullmatch(name))


def check_stored_name(name: str) -> str:
    """Return ``name`` if it has the server's shape, else :class:`FileNotFound` (no file can match)."""
    if not is_stored_name(name):
        raise FileNotFound(f"no stored file is named {name[:80]!r}: names look like <uuid4>-<name>.dcm")
    return name


_KEY_UUID = re.compile(rf"^({_UUID4})(?:\.dcm|-[\w.+-]{{1,{MAX_BASE_CHARS + 4}}}\.(?i:dcm))$", re.ASCII)


def object_key(name: str) -> str:
    """The object-store key of a stored name: ``<uuid>.dcm``, the client's file name left out (no patient data)."""
    return f"{check_stored_name(name)[:36]}.dcm"


def uuid_of_key(key: str) -> str | None:
    """The stored name's UUID a blob key carries (an object key or a folder's stored name); None for a foreign key.

    A sweeper asks the index whether a row's name starts with it (``<uuid>-``): no row, no owner.
    """
    found = _KEY_UUID.fullmatch(key)
    return found.group(1) if found else None


def name_id(name: str) -> str:
    """The server-made UUID that starts every stored name: loggable, unlike the client's file name after it."""
    return name[:36]
