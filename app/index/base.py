"""The :class:`InstanceIndex` protocol the services depend on, and the records it exchanges.

The index is the source of truth for what is stored: a file without an index row does not
exist for callers (it is the leftover of a crash, found again by ``lightbox reindex``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from app.auth.principals import Principal
from app.dicom.header_json import Header
from app.dicom.indexed import InstanceAttributes

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class NewInstance:
    """A file just published to the blob store, to be committed to the index."""

    name: str
    owner: str
    size: int
    sha256: str
    uploaded_at_us: int
    attributes: InstanceAttributes
    header: Header


class AddOutcome(enum.Enum):
    STORED = "stored"
    ALREADY_STORED = "already-stored"


@dataclass(frozen=True)
class AddResult:
    outcome: AddOutcome
    name: str  # the new name, or the name of the identical file stored earlier


@dataclass(frozen=True)
class InstanceSummary:
    """One row of the file list."""

    name: str
    patient_id: str
    patient_name: str
    study_instance_uid: str
    study_date: str
    series_instance_uid: str
    sop_instance_uid: str
    modality: str
    size: int
    uploaded_at_us: int


@dataclass(frozen=True)
class ListQuery:
    """Filters of ``GET /dicomFile``; ``*``/``?`` are wildcards in ``patient_id``/``patient_name``."""

    patient_id: str | None = None
    patient_name: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    modality: str | None = None
    study_date_from: str | None = None
    study_date_to: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


@dataclass(frozen=True)
class ListPage:
    items: list[InstanceSummary] = field(default_factory=list)
    total: int = 0


class QueryLevel(enum.StrEnum):
    """Query/Retrieve Level (0008,0052), PS3.4 C.3."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


@dataclass(frozen=True)
class FindQuery:
    """Matching keys of a C-FIND (PS3.4 C.2.2.2); an empty key matches everything (universal matching).

    ``patient_id``, ``patient_name`` (case-insensitive), ``accession_number``, ``study_description``
    and ``modality`` take ``*``/``?`` wildcards; the UID tuples are lists of UIDs (any may match);
    dates are an inclusive range (either end may be open). ``modality`` at STUDY level matches
    Modalities in Study (0008,0061).
    """

    level: QueryLevel
    patient_id: str = ""
    patient_name: str = ""
    study_instance_uids: tuple[str, ...] = ()
    study_date_from: str = ""
    study_date_to: str = ""
    accession_number: str = ""
    study_description: str = ""
    modality: str = ""
    series_instance_uids: tuple[str, ...] = ()
    sop_instance_uids: tuple[str, ...] = ()
    sop_class_uids: tuple[str, ...] = ()
    limit: int = MAX_LIMIT


@dataclass(frozen=True)
class FindMatch:
    """One C-FIND answer: the attributes of its level and the levels above (others empty)."""

    patient_id: str
    patient_name: str
    patient_birth_date: str
    study_instance_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""
    modalities_in_study: str = ""
    series_instance_uid: str = ""
    modality: str = ""
    series_number: int | None = None
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    instance_number: int | None = None
    transfer_syntax_uid: str = ""
    name: str = ""  # the stored name (IMAGE level), for retrieval


class InstanceIndex(Protocol):
    """Add / get / query / remove; every call names the principal it acts for."""

    read_only: bool  # opened on a read-only folder: reads only

    async def add(self, instance: NewInstance) -> AddResult:
        """Commit ``instance``; identical bytes -> ALREADY_STORED; same SOP Instance UID -> InstanceConflict."""
        ...

    async def find_existing(self, principal: Principal, sha256: str, sop_instance_uid: str) -> AddResult | None:
        """A cheap early answer before publishing: the identical file, or InstanceConflict; None if new."""
        ...

    async def header(self, principal: Principal, name: str) -> Header:
        """The stored DICOM JSON header of ``name`` (FileNotFound if unknown or not visible)."""
        ...

    async def exists(self, principal: Principal, name: str) -> bool: ...

    async def query(self, principal: Principal, query: ListQuery) -> ListPage: ...

    async def find(self, principal: Principal, query: FindQuery) -> list[FindMatch]:
        """The patients, studies, series or instances ``principal`` may see that match (at most ``limit``)."""
        ...

    async def remove(self, principal: Principal, name: str) -> None:
        """Delete the row of ``name`` (and parents left empty); FileNotFound if unknown."""
        ...

    async def clear(self) -> None:
        """Forget every row (``lightbox reindex`` rebuilds from the files)."""
        ...

    async def names(self) -> set[str]:
        """Every stored name in the index."""
        ...

    async def counts(self) -> dict[str, int]:
        """Rows per level (patients, studies, series, instances)."""
        ...

    async def state(self, key: str) -> str | None:
        """A fact about the index itself (such as the id of its storage folder), None if never recorded."""
        ...

    async def record_state(self, key: str, value: str, replace: bool = False) -> str:
        """Record ``value`` under ``key`` unless one is there already (or ``replace``); return the value kept."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
