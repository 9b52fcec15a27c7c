"""Alembic environment: runs on the connection :mod:`app.index.migrate` hands over (never its own engine)."""

from __future__ import annotations

from alembic import context

from app.index.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
