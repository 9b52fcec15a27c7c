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
from app.dicom.qido import SearchQuery

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
class StudyAccess:
    """What a principal may do with one study's instances: see some, change some, own some."""

    visible: bool
    writable: bool
    owned: bool


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


@dataclass(frozen=True)
class SearchRow:
    """One QIDO-RS result: identity, the counts the index computes, and the header of a representative
    instance (the first stored of the study or series) that the other return attributes come from."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    modalities_in_study: str
    related_series: int
    related_instances: int
    header: Header


@dataclass(frozen=True)
class Located:
    """A stored instance named by its UIDs (WADO-RS, WADO-URI): its stored name and what a retrieve needs."""

    name: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    number_of_frames: int | None
    header: Header | None = None


class InstanceIndex(Protocol):
    """Add / get / query / remove; every call names the principal it acts for."""

    read_only: bool  # opened on a read-only folder: reads only
    shared: bool  # a database server other processes and hosts write to (PostgreSQL), not a local file

    async def add(self, instance: NewInstance) -> AddResult:
        """Commit ``instance``; identical bytes -> ALREADY_STORED; same SOP Instance UID -> InstanceConflict."""
        ...

    async def find_existing(self, principal: Principal, sha256: str, sop_instance_uid: str) -> AddResult | None:
        """An early answer before a costly publish: the identical file, or InstanceConflict; None if new."""
        ...

    async def header(self, principal: Principal, name: str) -> Header:
        """The stored DICOM JSON header of ``name`` (FileNotFound if unknown or not visible)."""
        ...

    async def exists(self, principal: Principal, name: str) -> bool: ...

    async def study_uid(self, principal: Principal, name: str) -> str:
        """The Study Instance UID (0020,000D) of ``name``: the audit record's study, and the same
        visibility check as :meth:`header` (FileNotFound if unknown or not visible), in one query."""
        ...

    async def query(self, principal: Principal, query: ListQuery) -> ListPage: ...

    async def find(self, principal: Principal, query: FindQuery) -> list[FindMatch]:
        """The patients, studies, series or instances ``principal`` may see that match (at most ``limit``)."""
        ...

    async def search(self, principal: Principal, query: SearchQuery) -> list[SearchRow]:
        """QIDO-RS: the studies, series or instances the principal may see that match, in storage order."""
        ...

    async def locate(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
        headers: bool = False,
    ) -> list[Located]:
        """The visible instances of a study, series or one instance, in series and instance order."""
        ...

    async def remove(self, principal: Principal, name: str) -> None:
        """Delete the row of ``name`` (and parents left empty); FileNotFound if unknown or not visible,
        Forbidden if visible but not writable by ``principal``."""
        ...

    async def study_access(self, principal: Principal, study_instance_uid: str) -> StudyAccess:
        """Whether ``principal`` sees, may change, and owns instances of the study."""
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
