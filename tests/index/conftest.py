"""The index tests that drive a real app run it on both index databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(storage_dir=tmp_path / "storage", database_url=database_url)
