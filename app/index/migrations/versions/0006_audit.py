"""The audit trail: ``audit_records``, one row per access to patient data and per security event.

Append-only (issue 10): no API or CLI deletes a record, and the database itself refuses UPDATE
and DELETE on the table through triggers (SQLite ``RAISE(ABORT)``, PostgreSQL a PL/pgSQL
function, also on TRUNCATE), so a bug or an injected statement cannot rewrite history. An
operator who must prune records drops the triggers knowingly.

Revision ID: 0006_audit
Revises: 0005_dicomweb
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_audit"
down_revision = "0005_dicomweb"
branch_labels = None
depends_on = None

REFUSAL = "audit records are append-only"
SQLITE_TRIGGERS = {
    "audit_records_no_update": "BEFORE UPDATE",
    "audit_records_no_delete": "BEFORE DELETE",
}


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("study_instance_uid", sa.String(256)),
        sa.Column("name", sa.String(300)),
        sa.Column("client", sa.String(128)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_records_time", "audit_records", ["time_us", "id"])
    op.create_index("ix_audit_records_actor_time", "audit_records", ["actor", "time_us"])
    op.create_index("ix_audit_records_study_time", "audit_records", ["study_instance_uid", "time_us"])
    op.create_index("ix_audit_records_action_time", "audit_records", ["action", "time_us"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger, when in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {trigger} {when} ON audit_records BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END")
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION lightbox_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records "
            "FOR EACH ROW EXECUTE FUNCTION lightbox_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records "
            "FOR EACH STATEMENT EXECUTE FUNCTION lightbox_audit_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_records_no_truncate ON audit_records")
        op.execute("DROP TRIGGER IF EXISTS audit_records_append_only ON audit_records")
        op.execute("DROP FUNCTION IF EXISTS lightbox_audit_append_only()")
    op.drop_table("audit_records")
