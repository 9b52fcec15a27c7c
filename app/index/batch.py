"""Writing one batch of new instances (group commit) on a synchronous SQLAlchemy connection.

Written once, run two ways by :class:`app.index.sql.SqlInstanceIndex`: on SQLite, the whole batch
runs on a plain ``sqlite3`` connection in ONE worker-thread call (through aiosqlite every statement
was three or four thread round trips, ~20 per upload, each a wake-up and a GIL hand-off); on
PostgreSQL, through ``AsyncConnection.run_sync`` on the asyncio driver, as before.

Each row is written in its own savepoint, so a duplicate or a conflict undoes that row alone.
Duplicates are decided by the unique constraints, never by a check-then-insert: an IntegrityError is
classified afterwards on the batch's connection, which sees the rows written earlier in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.errors import IndexUnavailable, InstanceConflict
from app.index.base import AddOutcome, AddResult, NewInstance
from app.index.retry import WRITE_ATTEMPTS, transient
from app.index.schema import patients, series, studies
from app.index.writes import INSERT_INSTANCE, KNOWN_IDS, SAME_FILE, create_parent, find_parent

#: An instance and its header as DICOM JSON text.
Add = tuple[NewInstance, str]


def insert_batch(conn: Connection, batch: Sequence[Add]) -> list[AddResult | BaseException]:
    """Every row of ``batch`` on ``conn`` (inside the caller's transaction), each with its own outcome.

    Rows go in the order of their patient, study and series keys: two replicas writing batches of the
    same studies take those rows' locks in the same order (PostgreSQL), instead of deadlocking.
    """
    outcomes: list[AddResult | BaseException] = [IndexUnavailable("not written")] * len(batch)
    for n in sorted(range(len(batch)), key=lambda n: _lock_order(batch[n][0])):
        outcomes[n] = _insert_row(conn, *batch[n])
    return outcomes


def existing_in(conn: Connection, owner: str, sha256: str, sop_instance_uid: str) -> AddResult | None:
    """The stored file with these bytes (ALREADY_STORED), or :class:`InstanceConflict` when another
    file holds the SOP Instance UID, or None. One statement, so both questions are answered from the
    same snapshot: two separate reads could straddle a concurrent commit of the same bytes and
    report it as a conflict."""
    keys = {"owner": owner, "sha256": sha256, "sop_instance_uid": sop_instance_uid}
    rows = conn.execute(SAME_FILE, keys).all()
    for name, row_sha in rows:
        if row_sha == sha256:
            return AddResult(AddOutcome.ALREADY_STORED, str(name))
    if rows:
        same_uid = str(rows[0][0])
        raise InstanceConflict(
            f"a different file with SOP Instance UID {sop_instance_uid} is already stored as {same_uid}", same_uid
        )
    return None


def refresh_modalities(conn: Connection, study_pk: int) -> None:
    """Modalities in Study (0008,0061): the distinct Modality (0008,0060) of the study's series.

    The study row is locked first (``FOR NO KEY UPDATE``: it does not wait for the key-share locks
    other replicas' new series hold), so two replicas adding series of one study compute in turn,
    the second from a snapshot that holds the first's series. SQLite has one writer anyway."""
    conn.execute(select(studies.c.id).where(studies.c.id == study_pk).with_for_update(key_share=True))
    found = conn.scalars(select(series.c.modality).where(series.c.study_pk == study_pk).distinct())
    joined = "\\".join(sorted(m for m in found if m))[:256]
    conn.execute(update(studies).where(studies.c.id == study_pk).values(modalities_in_study=joined))


def _lock_order(new: NewInstance) -> tuple[str, ...]:
    a = new.attributes
    return tuple(str(key or "") for key in (new.owner, a.patient_id, a.study_instance_uid, a.series_instance_uid))


def _insert_row(conn: Connection, new: NewInstance, header_text: str) -> AddResult | BaseException:
    """STORED, or the identical file's name, or :class:`InstanceConflict` (two copies of one file in
    one batch: the second names the first)."""
    for _ in range(WRITE_ATTEMPTS):
        try:
            with conn.begin_nested():
                _insert_rows(conn, new, header_text)
            return AddResult(AddOutcome.STORED, new.name)
        except IntegrityError:
            try:
                existing = existing_in(conn, new.owner, new.sha256, new.attributes.sop_instance_uid)
            except InstanceConflict as conflict:
                return conflict
            if existing is not None:
                return existing
        except SQLAlchemyError as exc:
            if transient(exc):
                raise  # the lock or a deadlock is the batch's: the whole batch is retried
            cause = getattr(exc, "orig", None) or exc
            return IndexUnavailable(f"the index database failed ({type(cause).__name__})")
    return IndexUnavailable("the index refused the new instance")


def _find_or_create(
    conn: Connection, table: Table, key: dict[str, Any], values: dict[str, Any], found: int | None
) -> tuple[int, bool]:
    """``found`` is the row :data:`KNOWN_IDS` saw in this transaction; else the row is created with
    ``INSERT ... ON CONFLICT DO NOTHING``, so a replica that created it at the same moment makes this
    one wait for its commit and then find its row, instead of failing the whole upload."""
    if found is not None:
        return int(found), False
    created = conn.scalar(create_parent(conn.dialect.name, table), {**key, **values})
    if created is not None:
        return int(created), True
    existing = conn.scalar(find_parent(table), key)
    assert existing is not None, "ON CONFLICT DO NOTHING returned no row and none exists"
    return int(existing), False


def _insert_rows(conn: Connection, new: NewInstance, header_text: str) -> None:
    a, owner = new.attributes, new.owner
    keys = {
        "patients_owner": owner,
        "patients_patient_id": a.patient_id,
        "studies_owner": owner,
        "studies_study_instance_uid": a.study_instance_uid,
        "series_owner": owner,
        "series_series_instance_uid": a.series_instance_uid,
    }
    known_patient, known_study, known_series = conn.execute(KNOWN_IDS, keys).one()
    patient_pk, _ = _find_or_create(
        conn,
        patients,
        {"owner": owner, "patient_id": a.patient_id},
        {"patient_name": a.patient_name, "patient_birth_date": a.patient_birth_date},
        known_patient,
    )
    study_pk, _ = _find_or_create(
        conn,
        studies,
        {"owner": owner, "study_instance_uid": a.study_instance_uid},
        {
            "patient_pk": patient_pk,
            "study_date": a.study_date,
            "study_description": a.study_description,
            "accession_number": a.accession_number,
            "modalities_in_study": "",
            "study_time": a.study_time,
            "referring_physician_name": a.referring_physician_name,
            "study_id": a.study_id,
        },
        known_study,
    )
    series_pk, created = _find_or_create(
        conn,
        series,
        {"owner": owner, "series_instance_uid": a.series_instance_uid},
        {
            "study_pk": study_pk,
            "modality": a.modality,
            "series_number": a.series_number,
            "series_description": a.series_description,
            "pps_start_date": a.pps_start_date,
            "pps_start_time": a.pps_start_time,
        },
        known_series,
    )
    if created:
        refresh_modalities(conn, study_pk)
    conn.execute(
        INSERT_INSTANCE,
        {
            "owner": owner,
            "series_pk": series_pk,
            "name": new.name,
            "sop_class_uid": a.sop_class_uid,
            "sop_instance_uid": a.sop_instance_uid,
            "instance_number": a.instance_number,
            "rows": a.rows,
            "columns": a.columns,
            "number_of_frames": a.number_of_frames,
            "transfer_syntax_uid": a.transfer_syntax_uid,
            "size": new.size,
            "sha256": new.sha256,
            "uploaded_at_us": new.uploaded_at_us,
            "header": header_text,
            "modality_of_series": series_pk,
        },
    )
