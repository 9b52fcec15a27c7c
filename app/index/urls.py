"""Database URLs: ``LIGHTBOX_DATABASE_URL`` takes any SQLAlchemy URL; the async driver is chosen here."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url

from app.errors import InvalidRequest

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
