"""The real ``lightbox`` command with two workers on a throwaway PostgreSQL index: the original API
end to end, and twenty identical uploads at once stored exactly once (the database's unique
constraints decide, whichever worker receives each copy)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.conftest import sample
from tests.e2e.server import RunningServer, run_server

COPIES = 20


@pytest.fixture
def server(tmp_path: Path, postgres_server: str) -> Iterator[RunningServer]:
    with (
        postgres.fresh_database(postgres_server) as url,
        run_server(
            tmp_path,
            env={"LIGHTBOX_DATABASE_URL": url, "LIGHTBOX_WORKERS": "2", "LIGHTBOX_LOG_FORMAT": "json"},
        ) as running,
    ):
        yield running


def request_pids(server: RunningServer) -> set[int]:
    """The worker processes that logged an answered request."""
    pids = set()
    for line in server.log_lines():
        if line.startswith("{"):
            entry = json.loads(line)
            if "status" in entry:
                pids.add(int(entry["pid"]))
    return pids


def test_two_workers_share_one_postgresql_index(server: RunningServer) -> None:
    ct, mr = sample("CT_small.dcm").read_bytes(), sample("MR_small.dcm").read_bytes()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        stored = http.post("/upload", files={"file": ("CT_small.dcm", ct)})
        assert stored.status_code == 201, stored.text
        name = stored.json()["message"].removeprefix("File saved as: ")
        assert name.endswith("-CT_small.dcm")

        def upload(_: int) -> httpx.Response:
            return http.post("/upload", files={"file": ("MR_small.dcm", mr)})

        with ThreadPoolExecutor(COPIES) as pool:
            answers = list(pool.map(upload, range(COPIES)))
        assert sorted(a.status_code for a in answers).count(201) == 1, [a.text for a in answers]
        assert {a.status_code for a in answers} <= {200, 201}, [a.text for a in answers]
        mr_names = {a.json()["name"] for a in answers}
        assert len(mr_names) == 1
        (mr_name,) = mr_names

        # every worker answers for every row: ask on new connections (each accepted by either worker)
        # until both have answered; each asks the database
        def look_up(_: int) -> httpx.Response:
            return http.get(f"/dicomFile/{name}", params={"tag": "(0010,0020)"}, headers={"Connection": "close"})

        for _ in range(50):
            with ThreadPoolExecutor(8) as pool:
                tags = list(pool.map(look_up, range(8)))
            assert {t.status_code for t in tags} == {200}
            if len(request_pids(server)) == 2:
                break
        assert len(request_pids(server)) == 2, "both workers should have answered requests"
        png = http.get(f"/dicomFile/{mr_name}", params={"png": ""})
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        listed = http.get("/dicomFile").json()
        assert sorted(row["name"] for row in listed["data"]) == sorted([name, mr_name])
        assert len(list((server.storage).rglob("*-MR_small.dcm"))) == 1  # one file on disk, too
        assert http.delete(f"/dicomFile/{name}").status_code in {200, 204}
        # both workers answered this lookup a moment ago: once the delete is answered, neither serves it
        with ThreadPoolExecutor(8) as pool:
            gone = list(pool.map(look_up, range(16)))
        assert {g.status_code for g in gone} == {404}
        assert [row["name"] for row in http.get("/dicomFile").json()["data"]] == [mr_name]
