"""QIDO-RS matching keys (PS3.18 Table 10.6.1-5) the index did not keep yet.

Study: Study Time (0008,0030), Referring Physician's Name (0008,0090), Study ID (0020,0010).
Series: Series Description (0008,103E), Performed Procedure Step Start Date/Time (0040,0244/0245).
Rows already stored are filled from the DICOM JSON header kept on their first instance, so a
search by these keys finds files uploaded before the migration too.

Revision ID: 0005_dicomweb
Revises: 0004_access
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005_dicomweb"
down_revision = "0004_access"
branch_labels = None
depends_on = None

STUDY_COLUMNS = {"study_time": "00080030", "referring_physician_name": "00080090", "study_id": "00200010"}
SERIES_COLUMNS = {"series_description": "0008103E", "pps_start_date": "00400244", "pps_start_time": "00400245"}
WIDTHS = {"study_id": 64}


def _text(header: dict[str, Any], key: str, width: int) -> str:
    """The first value as the index keeps it (a person name by its alphabetic group)."""
    values = header.get(key, {}).get("Value") or [""]
    value = values[0]
    if isinstance(value, dict):
        value = value.get("Alphabetic", "")
    return str(value or "").strip(" \x00")[:width]


def _backfill(table: str, parent: str, columns: dict[str, str]) -> None:
    """Fill each row from the header of its first instance (a series directly, a study via its series)."""
    bind = op.get_bind()
    if parent == "series":
        first = "SELECT MIN(i.id) FROM instances i WHERE i.series_pk = t.id"
    else:
        first = "SELECT MIN(i.id) FROM instances i JOIN series s ON s.id = i.series_pk WHERE s.study_pk = t.id"
    rows = bind.execute(
        sa.text(f"SELECT t.id, (SELECT header FROM instances WHERE id = ({first})) FROM {table} t")
    ).all()
    for row_id, header_text in rows:
        if not header_text:
            continue
        header = json.loads(header_text)
        values = {column: _text(header, key, WIDTHS.get(column, 256)) for column, key in columns.items()}
        assignments = ", ".join(f"{column} = :{column}" for column in columns)
        bind.execute(sa.text(f"UPDATE {table} SET {assignments} WHERE id = :id"), {**values, "id": row_id})


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("study_time", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("referring_physician_name", sa.String(256), nullable=False, server_default=""))
        batch.add_column(sa.Column("study_id", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("series") as batch:
        batch.add_column(sa.Column("series_description", sa.String(256), nullable=False, server_default=""))
        batch.add_column(sa.Column("pps_start_date", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("pps_start_time", sa.String(32), nullable=False, server_default=""))
    _backfill("studies", "studies", STUDY_COLUMNS)
    _backfill("series", "series", SERIES_COLUMNS)


def downgrade() -> None:
    with op.batch_alter_table("series") as batch:
        for column in SERIES_COLUMNS:
            batch.drop_column(column)
    with op.batch_alter_table("studies") as batch:
        for column in STUDY_COLUMNS:
            batch.drop_column(column)
