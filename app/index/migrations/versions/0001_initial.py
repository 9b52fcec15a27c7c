"""The first index: patients, studies, series, instances.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("patient_id", sa.String(256), nullable=False),
        sa.Column("patient_name", sa.String(256), nullable=False),
        sa.Column("patient_birth_date", sa.String(32), nullable=False),
        sa.UniqueConstraint("patient_id", "owner", name="uq_patients_owner_patient_id"),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("patient_pk", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False),
        sa.Column("study_instance_uid", sa.String(256), nullable=False),
        sa.Column("study_date", sa.String(32), nullable=False),
        sa.Column("study_description", sa.String(256), nullable=False),
        sa.Column("accession_number", sa.String(256), nullable=False),
        sa.Column("modalities_in_study", sa.String(256), nullable=False),
        sa.UniqueConstraint("study_instance_uid", "owner", name="uq_studies_owner_study_uid"),
    )
    op.create_index("ix_studies_patient_pk", "studies", ["patient_pk"])
    op.create_index("ix_studies_study_date", "studies", ["study_date"])
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("study_pk", sa.Integer, sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("series_instance_uid", sa.String(256), nullable=False),
        sa.Column("modality", sa.String(64), nullable=False),
        sa.Column("series_number", sa.Integer),
        sa.UniqueConstraint("series_instance_uid", "owner", name="uq_series_owner_series_uid"),
    )
    op.create_index("ix_series_study_pk", "series", ["study_pk"])
    op.create_index("ix_series_modality", "series", ["modality"])
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("series_pk", sa.Integer, sa.ForeignKey("series.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(300), nullable=False, unique=True),
        sa.Column("sop_class_uid", sa.String(256), nullable=False),
        sa.Column("sop_instance_uid", sa.String(256), nullable=False),
        sa.Column("instance_number", sa.Integer),
        sa.Column("rows", sa.Integer),
        sa.Column("columns", sa.Integer),
        sa.Column("number_of_frames", sa.Integer),
        sa.Column("transfer_syntax_uid", sa.String(256), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_at_us", sa.BigInteger, nullable=False),
        sa.Column("header", sa.Text, nullable=False),
        sa.UniqueConstraint("sop_instance_uid", "owner", name="uq_instances_owner_sop_uid"),
        sa.UniqueConstraint("sha256", "owner", name="uq_instances_owner_sha256"),
    )
    op.create_index("ix_instances_series_pk", "instances", ["series_pk"])
    op.create_index("ix_instances_owner_uploaded", "instances", ["owner", "uploaded_at_us", "id"])
    op.create_index("ix_instances_uploaded", "instances", ["uploaded_at_us", "id"])


def downgrade() -> None:
    op.drop_table("instances")
    op.drop_table("series")
    op.drop_table("studies")
    op.drop_table("patients")
