"""``lightbox check`` and ``lightbox reindex --prune-missing``: the operator's view of index and storage, and
the one explicit, logged way to forget rows whose file is gone."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import anyio
import httpx
import pytest

from app.cli import main
from app.config import Settings
from app.main import create_app
from tests.conftest import sample

ORPHAN = "6f9c3a52-7a7e-4c1e-9d55-0c1d2e3f4a5b-orphan.dcm"


def populate(storage: Path, *samples: str) -> list[str]:
    """Upload the samples through the real app; their stored names."""

    async def run() -> list[str]:
        app = create_app(Settings(storage_dir=storage))
        names = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as client:
                for name in samples:
                    response = await client.post("/upload", files={"file": (name, sample(name).read_bytes())})
                    assert response.status_code == 201, response.text
                    names.append(response.json()["name"])
        return names

    return anyio.run(run)


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "storage"
    monkeypatch.setenv("LIGHTBOX_STORAGE_DIR", str(folder))
    return folder


def test_check_is_clean_when_index_and_folder_agree(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(storage, "CT_small.dcm", "MR_small.dcm")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "2 stored file(s); index: 2 instance(s)" in out
    assert "0 index row(s) without a file" in out and "0 file(s) without an index row" in out


def test_check_lists_both_kinds_of_disagreement(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept, lost = populate(storage, "CT_small.dcm", "MR_small.dcm")
    (storage / lost).unlink()
    shutil.copyfile(sample("JPGExtended.dcm"), storage / ORPHAN)
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "1 index row(s) without a file" in out and f"  {lost}\n" in out
    assert "1 file(s) without an index row" in out and f"  {ORPHAN}\n" in out
    assert kept not in out


def test_prune_missing_lists_then_removes_exactly_the_missing_row(
    storage: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    kept, lost = populate(storage, "CT_small.dcm", "MR_small.dcm")
    (storage / lost).unlink()
    assert main(["reindex", "--prune-missing"]) == 1  # without --yes: lists, removes nothing
    out = capsys.readouterr().out
    assert f"  {lost}\n" in out and "nothing removed" in out
    assert main(["check"]) == 1
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="lightbox.reindex"):
        assert main(["reindex", "--prune-missing", "--yes"]) == 0
    assert "removed 1 index row(s)" in capsys.readouterr().out
    (record,) = [r for r in caplog.records if "pruned" in r.getMessage()]
    assert lost[:36] in record.getMessage() and "MR_small" not in record.getMessage()  # no client file name
    assert main(["check"]) == 0
    assert "index: 1 instance(s)" in capsys.readouterr().out
    assert (storage / kept).is_file()


def test_nothing_is_pruned_or_rebuilt_while_the_folder_looks_unmounted(
    storage: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIGHTBOX_DATABASE_URL", f"sqlite:///{tmp_path / 'index.sqlite3'}")
    populate(storage, "CT_small.dcm", "MR_small.dcm")
    storage.rename(tmp_path / "away")
    storage.mkdir()
    assert main(["check"]) == 1
    assert "storage looks wrong: the storage folder holds no stored file" in capsys.readouterr().out
    assert main(["reindex", "--prune-missing", "--yes"]) == 2
    assert "refusing to prune" in capsys.readouterr().err
    assert main(["reindex"]) == 2
    assert "refusing to rebuild (it would forget 2 row(s))" in capsys.readouterr().err
    shutil.rmtree(storage)
    (tmp_path / "away").rename(storage)
    assert main(["check"]) == 0


def test_a_lost_index_is_rebuilt_by_reindex_and_adopts_the_folder(
    storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(storage, "CT_small.dcm", "MR_small.dcm")
    for database in storage.glob("index.sqlite3*"):  # the index is lost; the files and their marker remain
        database.unlink()
    assert main(["check"]) == 1
    assert "run `lightbox reindex`" in capsys.readouterr().out
    assert main(["reindex"]) == 0
    assert "reindexed 2 file(s)" in capsys.readouterr().out
    assert main(["check"]) == 0
