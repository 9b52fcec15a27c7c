"""When an index write is worth another try (shared by the batch writer and the other writes)."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

#: How often a write is tried before it is refused (503).
WRITE_ATTEMPTS = 5

#: PostgreSQL SQLSTATEs worth another try (Appendix A): serialization_failure, deadlock_detected.
RETRYABLE_SQLSTATES = {"40001", "40P01"}


def transient(exc: BaseException | None) -> bool:
    """A failure a retry can cure: SQLite's "database is locked", a PostgreSQL serialization failure or deadlock."""
    if isinstance(exc, OperationalError) and "locked" in str(exc):
        return True
    cause = getattr(exc, "orig", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return sqlstate in RETRYABLE_SQLSTATES
