"""Access control: users, login tokens, API keys, grants and share links.

Only hashes of secrets are stored (SHA-256 of 256-bit random secrets; argon2id for passwords), and
each token is a row, so logging out or revoking a key, a grant or a share takes effect at once.

Revision ID: 0004_access
Revises: 0003_startup
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_access"
down_revision = "0003_startup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(128), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "login_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger),
        sa.Column("last_used_at_us", sa.BigInteger),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_instance_uid", sa.String(256), nullable=False),
        sa.Column("grantor", sa.String(128), sa.ForeignKey("users.username", ondelete="CASCADE"), nullable=False),
        sa.Column("grantee", sa.String(128), sa.ForeignKey("users.username", ondelete="CASCADE"), nullable=False),
        sa.Column("access", sa.String(8), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("study_instance_uid", "grantor", "grantee", name="uq_grants_study_grantor_grantee"),
    )
    op.create_index("ix_grants_grantee_study", "grants", ["grantee", "study_instance_uid"])
    op.create_table(
        "shares",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study_instance_uid", sa.String(256), nullable=False),
        sa.Column(
            "creator", sa.String(128), sa.ForeignKey("users.username", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("shares", "grants", "api_keys", "login_tokens", "users"):
        op.drop_table(table)
