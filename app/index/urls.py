"""Database URLs: ``LIGHTBOX_DATABASE_URL`` takes any SQLAlchemy URL; the async driver is chosen here."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from app.errors import IndexNeedsWrite, InvalidRequest

#: The asyncio driver SQLAlchemy offers for each backend.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql", "mariadb": "aiomysql"}
#: Drivers that are already asyncio-capable and are kept as given.
ASYNC_CAPABLE = {"aiosqlite", "asyncpg", "psycopg", "aiomysql", "asyncmy"}
ALIASES = {"postgres": "postgresql"}


def default_database_url(storage_dir: Path) -> str:
    """The embedded default: SQLite next to the files, ``<storage dir>/index.sqlite3``."""
    return f"sqlite+aiosqlite:///{(storage_dir.resolve() / 'index.sqlite3').as_posix()}"


def async_url(text: str) -> URL:
    """``sqlite:///x`` -> ``sqlite+aiosqlite:///x``, ``postgresql://...`` -> ``postgresql+asyncpg://...``."""
    try:
        url = make_url(text)
    except Exception:
        raise InvalidRequest(
            "LIGHTBOX_DATABASE_URL is not a database URL such as sqlite:///path/index.sqlite3"
        ) from None
    backend = ALIASES.get(url.get_backend_name(), url.get_backend_name())
    driver = url.get_driver_name() if "+" in url.drivername else None
    if driver in ASYNC_CAPABLE:
        return url.set(drivername=f"{backend}+{driver}")
    if backend not in ASYNC_DRIVERS:
        raise InvalidRequest(f"no asyncio driver is known for database {backend!r}: use sqlite or postgresql")
    return url.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}")


def read_only_sqlite(url: URL) -> URL | None:
    """The URL that opens an SQLite file read-only when its folder cannot be written, else None.

    SQLite in WAL mode creates ``-wal`` and ``-shm`` files beside the database, impossible in a
    read-only folder (a read-only mount of an archive). A cleanly closed database leaves no WAL, so
    ``immutable=1`` opens it with no lock files at all; a WAL left by an unclean stop holds
    committed rows, so it is read through with ``mode=ro`` (SQLite needs its ``-shm`` file then).
    """
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).resolve()
    if os.access(path.parent, os.W_OK):
        return None
    if not path.is_file():
        raise IndexNeedsWrite(f"there is no index at {path} and its folder is read-only: it cannot be created")
    wal = path.with_name(path.name + "-wal")
    query = {"mode": "ro", "uri": "true"}
    if not (wal.is_file() and wal.stat().st_size > 0):
        query["immutable"] = "1"
    elif not path.with_name(path.name + "-shm").is_file():
        raise IndexNeedsWrite(
            f"the index at {path} was not closed cleanly (its -wal file holds commits) and its folder is "
            "read-only: start once with the storage writable"
        )
    return URL.create(url.drivername, database=f"file:{path.as_posix()}", query=query)
