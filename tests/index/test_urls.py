"""LIGHTBOX_DATABASE_URL: any SQLAlchemy URL, with the asyncio driver picked automatically."""

from pathlib import Path

import pytest

from app.errors import InvalidRequest
from app.index.urls import async_url, default_database_url


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///tmp/x.sqlite3", "sqlite+aiosqlite"),
        ("sqlite+pysqlite:///tmp/x.sqlite3", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///tmp/x.sqlite3", "sqlite+aiosqlite"),
        ("postgresql://u:p@db/lightbox", "postgresql+asyncpg"),
        ("postgres://u:p@db/lightbox", "postgresql+asyncpg"),
        ("postgresql+psycopg2://u:p@db/lightbox", "postgresql+asyncpg"),
        ("postgresql+psycopg://u:p@db/lightbox", "postgresql+psycopg"),
    ],
)
def test_async_driver_is_chosen(given: str, driver: str) -> None:
    assert async_url(given).drivername == driver


@pytest.mark.parametrize("given", ["not a url", "oracle://db/x"])
def test_unusable_urls_are_refused(given: str) -> None:
    with pytest.raises(InvalidRequest):
        async_url(given)


def test_default_is_next_to_the_files(tmp_path: Path) -> None:
    assert default_database_url(tmp_path) == f"sqlite+aiosqlite:///{tmp_path.resolve()}/index.sqlite3"
