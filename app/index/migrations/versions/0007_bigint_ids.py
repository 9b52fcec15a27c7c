"""64-bit row ids on PostgreSQL: patients, studies, series and instances, and the keys that point at them.

SQLite's ``INTEGER PRIMARY KEY`` is already 64-bit (its rowid), so this is a no-op there. On
PostgreSQL the columns of 0001 are ``integer`` (``serial``, at most 2,147,483,647 rows ever
inserted, deleted ones included): an archive that ingests and prunes for years outgrows that. The
sequences behind the ids become ``bigint`` too (PostgreSQL 10+ types a serial's sequence).

Revision ID: 0007_bigint_ids
Revises: 0006_audit
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007_bigint_ids"
down_revision = "0006_audit"
branch_labels = None
depends_on = None

#: table -> its id column and the columns holding another table's id
COLUMNS = {
    "patients": ["id"],
    "studies": ["id", "patient_pk"],
    "series": ["id", "study_pk"],
    "instances": ["id", "series_pk"],
}


def _retype(sql_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        changes = ", ".join(f"ALTER COLUMN {column} TYPE {sql_type}" for column in columns)
        op.execute(f"ALTER TABLE {table} {changes}")
        op.execute(f"ALTER SEQUENCE IF EXISTS {table}_id_seq AS {sql_type}")


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    _retype("integer")
