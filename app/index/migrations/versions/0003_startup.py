"""``index_state``: facts about the index itself, first the id of the storage folder it belongs to.

Start-up compares that id with the marker file in the storage folder: an empty or foreign folder
(a volume not mounted yet, a wrong ``LIGHTBOX_STORAGE_DIR``) is then reported, never taken for a
fresh start. An index from before this revision has no id yet: the first start on its populated
storage folder writes the marker and records it here.

Revision ID: 0003_startup
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_startup"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "index_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("index_state")
