"""The statements an upload's index write executes, built once with bound parameters.

Building a SQLAlchemy statement per upload (``select(...).where(col == value)``) and then deriving
its cache key to find the compiled SQL cost more CPU than SQLite spent running it (py-spy, issue 15).
A statement object built once keeps its cache key (SQLAlchemy memoises it on the object), so each
execution only binds its values. Same SQL as before, portable (SQLite and PostgreSQL).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from app.index.schema import instances, patients, series, studies

#: Each parent table and the columns of its unique key (``owner`` first), as the schema's constraints.
PARENT_KEYS: dict[str, tuple[str, ...]] = {
    "patients": ("owner", "patient_id"),
    "studies": ("owner", "study_instance_uid"),
    "series": ("owner", "series_instance_uid"),
}


def _row_id(table: Table) -> Any:
    """The id of ``table``'s row whose key equals the ``<table>_<column>`` parameters."""
    where = (table.c[column] == bindparam(f"{table.name}_{column}") for column in PARENT_KEYS[table.name])
    return select(table.c.id).where(*where).scalar_subquery()


#: The patient, study and series rows an instance belongs to, if they exist: one round trip.
KNOWN_IDS: Select[Any] = select(_row_id(patients), _row_id(studies), _row_id(series))

#: The instance row; its ``modality`` is the series row's (the one filters mean), whatever the file says.
INSERT_INSTANCE = instances.insert().values(
    modality=select(series.c.modality).where(series.c.id == bindparam("modality_of_series")).scalar_subquery()
)

#: Files of one owner with these bytes or this SOP Instance UID (duplicate or conflict).
SAME_FILE: Select[Any] = select(instances.c.name, instances.c.sha256).where(
    instances.c.owner == bindparam("owner"),
    (instances.c.sha256 == bindparam("sha256")) | (instances.c.sop_instance_uid == bindparam("sop_instance_uid")),
)


@cache
def find_parent(table: Table) -> Select[Any]:
    """The id of ``table``'s row with the key given as parameters named like its columns."""
    return select(table.c.id).where(*(table.c[column] == bindparam(column) for column in PARENT_KEYS[table.name]))


@cache
def create_parent(dialect: str, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` in ``dialect`` (SQLite and PostgreSQL spell it alike)."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing().returning(table.c.id)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing().returning(table.c.id)
    raise NotImplementedError(f"no INSERT ... ON CONFLICT for {dialect}")
