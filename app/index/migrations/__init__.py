"""Alembic migrations of the index, applied at start-up by :mod:`app.index.migrate`."""
