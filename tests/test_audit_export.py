"""``lightbox audit export``: the stored records on stdout, as JSON lines or CSV, oldest first."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from app import cli
from app.index.audit import AuditRecord, SqlAuditLog
from app.index.sql import SqlInstanceIndex
from app.index.urls import default_database_url
from app.services.audit_view import FIELDS

DAY_US = 86_400 * 1_000_000
DEC_1 = 1_764_547_200 * 1_000_000  # 2025-12-01T00:00:00Z


async def store(storage: Path, records: list[AuditRecord]) -> None:
    index = await SqlInstanceIndex.open(default_database_url(storage))
    try:
        await SqlAuditLog(index.engine).append(records)
    finally:
        await index.close()


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "storage"
    folder.mkdir()
    monkeypatch.setenv("LIGHTBOX_STORAGE_DIR", str(folder))
    records = [
        AuditRecord(DEC_1 + day * DAY_US, "local", "user", "tag", "success", name=f"d{day}.dcm", detail='{"tag": 1}')
        for day in range(3)
    ]
    records.append(AuditRecord(DEC_1 + 3 * DAY_US, "bob", "api_key", "delete", "failure", reason="file_not_found"))
    asyncio.run(store(folder, records))
    return folder


def test_json_lines_hold_every_record_oldest_first(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["audit", "export"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [entry["name"] for entry in lines] == ["d0.dcm", "d1.dcm", "d2.dcm", None]
    assert tuple(lines[0]) == FIELDS
    assert lines[0]["time"] == "2025-12-01T00:00:00.000000Z" and lines[0]["detail"] == {"tag": 1}
    assert (lines[3]["actor"], lines[3]["actor_type"], lines[3]["reason"]) == ("bob", "api_key", "file_not_found")


def test_csv_and_since(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["audit", "export", "--format", "csv", "--since", "2025-12-02T00:00:00Z"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["name"] for row in rows] == ["d1.dcm", "d2.dcm", ""]
    assert rows[0]["detail"] == '{"tag": 1}' and rows[0]["action"] == "tag"
    assert cli.main(["audit", "export", "--since", "2025-12-02", "--until", "2025-12-03"]) == 0
    assert [json.loads(line)["name"] for line in capsys.readouterr().out.splitlines()] == ["d1.dcm"]


def test_a_bad_time_is_a_usage_error(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["audit", "export", "--since", "last tuesday"])
    assert exited.value.code == 2 and "ISO 8601" in capsys.readouterr().err
