"""The audit trail of a real ``lightbox`` with two workers: every request recorded once, in the database
and in the JSON log, nothing lost at SIGTERM, still there after a restart, exported by the command."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import sample
from tests.e2e.process import LIGHTBOX, lightbox


def audit_pids(lines: list[str]) -> set[int]:
    return {entry["pid"] for entry in map(json.loads, lines) if entry.get("audit") is True}


def test_every_request_is_recorded_once_across_workers_and_restarts(tmp_path: Path) -> None:
    expected: dict[str, tuple[str, str]] = {}  # request id -> (action, outcome)
    with lightbox(tmp_path, workers="2", audit_flush_seconds="5") as server:

        def call(request_id: str, action: str, outcome: str, method: str, url: str, **kwargs: object) -> str:
            # a new connection each time, so that both workers serve some
            headers = {"X-Request-ID": request_id}
            response = httpx.request(method, server.url + url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]
            assert response.status_code < 500, response.text
            expected[request_id] = (action, outcome)
            return response.text

        ct = sample("CT_small.dcm").read_bytes()
        name = json.loads(call("up-1", "upload", "success", "POST", "/upload", files={"file": ("ct.dcm", ct)}))["name"]
        for number in range(200):  # cached answers included
            call(f"tag-{number}", "tag", "success", "GET", f"/dicomFile/{name}", params={"tag": "Rows"})
            if number >= 10 and len(audit_pids(server.log_lines())) == 2:
                break
        assert len(audit_pids(server.log_lines())) == 2
        call("png-1", "render", "success", "GET", f"/dicomFile/{name}?png")
        call("list-1", "list", "success", "GET", "/dicomFile")
        call("missing-1", "download", "failure", "GET", "/dicomFile/nope.dcm?download")
        assert server.stop() == 0  # SIGTERM long before the 5 s flush interval: the stop must write them
        log = [json.loads(line) for line in server.log_lines()]

    audit_lines = [entry for entry in log if entry.get("audit") is True]
    assert Counter(e["request_id"] for e in audit_lines) == Counter(expected.keys())  # once each
    assert all((e["action"], e["outcome"]) == expected[e["request_id"]] for e in audit_lines)
    assert name not in json.dumps(audit_lines)
    assert {e["route"] for e in audit_lines} == {"/upload", "/dicomFile/{name}", "/dicomFile"}  # lean path too

    env = {**os.environ, "LIGHTBOX_STORAGE_DIR": str(tmp_path / "storage")}
    exported = subprocess.run([LIGHTBOX, "audit", "export"], env=env, capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert Counter(r["request_id"] for r in records) == Counter(expected.keys())
    assert all((r["action"], r["outcome"]) == expected[r["request_id"]] for r in records)
    assert {r["client"] for r in records} == {"127.0.0.1"}

    with lightbox(tmp_path, workers="1") as again:
        body = httpx.get(again.url + "/admin/audit", params={"limit": 1000}, timeout=30).json()
    assert Counter(r["request_id"] for r in body["data"]) == Counter(expected.keys())
    assert body["total"] == len(expected)
