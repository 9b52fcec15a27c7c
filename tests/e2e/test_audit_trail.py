"""The audit trail of a real ``lightbox`` with two workers: every request recorded once, in the database
and in the JSON log, nothing lost at SIGTERM, still there after a restart, exported by the command."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.auth.world import ADMIN_PASSWORD, PASSWORDS, STUDY_A, bearer
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


def test_a_server_with_auth_records_every_security_event_and_access(tmp_path: Path) -> None:
    """Issue 10's "done when": logins, a failed login, key/grant/share create+use+revoke, logout; each
    request's records in GET /admin/audit, by request id, and nothing for what was refused unseen."""
    expected: dict[str, list[tuple[str, str, str]]] = {}  # request id -> [(actor, action, outcome)]
    with lightbox(tmp_path, auth_required="true", admin_password=ADMIN_PASSWORD) as server:

        def call(request_id: str, records: list[tuple[str, str, str]], method: str, url: str, **kwargs: Any) -> Any:
            headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
            response = httpx.request(method, server.url + url, headers=headers, timeout=30, **kwargs)
            assert response.status_code < 500, response.text
            expected[request_id] = records
            return response

        def token(request_id: str, user: str, password: str) -> dict[str, str]:
            done = call(
                request_id,
                [(user, "login", "success")],
                "POST",
                "/auth/login",
                json={"username": user, "password": password},
            )
            return bearer(done.json()["access_token"])

        admin = token("login-admin", "admin", ADMIN_PASSWORD)
        wrong = call(
            "login-bad",
            [("alice", "login", "failure")],
            "POST",
            "/auth/login",
            json={"username": "alice", "password": "x" * 12},
        )
        assert wrong.status_code == 401
        for user in ("alice", "bob"):
            body = {"username": user, "password": PASSWORDS[user]}
            call(f"add-{user}", [("admin", "user_create", "success")], "POST", "/admin/users", json=body, headers=admin)
        alice, bob = token("login-alice", "alice", PASSWORDS["alice"]), token("login-bob", "bob", PASSWORDS["bob"])
        ct = sample("CT_small.dcm").read_bytes()
        up = call(
            "upload", [("alice", "upload", "success")], "POST", "/upload", files={"file": ("ct.dcm", ct)}, headers=alice
        )
        name = up.json()["name"]

        key = call(
            "key-create",
            [("alice", "key_create", "success")],
            "POST",
            "/auth/keys",
            json={"name": "k", "scope": "read"},
            headers=alice,
        ).json()
        assert (
            call("key-use", [("alice", "list", "success")], "GET", "/dicomFile", headers=bearer(key["key"])).status_code
            == 200
        )
        call("key-revoke", [("alice", "key_revoke", "success")], "DELETE", f"/auth/keys/{key['id']}", headers=alice)
        assert call("key-dead", [], "GET", "/dicomFile", headers=bearer(key["key"])).status_code == 401

        grant = {"study_instance_uid": STUDY_A, "username": "bob", "access": "read"}
        grant_id = call(
            "grant-create", [("alice", "grant_create", "success")], "POST", "/grants", json=grant, headers=alice
        ).json()["id"]
        tag = {"tag": "Rows"}
        assert (
            call(
                "grant-use", [("bob", "tag", "success")], "GET", f"/dicomFile/{name}", params=tag, headers=bob
            ).status_code
            == 200
        )
        call("grant-revoke", [("alice", "grant_revoke", "success")], "DELETE", f"/grants/{grant_id}", headers=alice)
        gone = call("grant-gone", [("bob", "tag", "failure")], "GET", f"/dicomFile/{name}", params=tag, headers=bob)
        assert gone.status_code == 404

        share = {"study_instance_uid": STUDY_A, "expires_in": 600}
        made = call(
            "share-create", [("alice", "share_create", "success")], "POST", "/shares", json=share, headers=alice
        ).json()
        actor = f"share:{made['id']}"
        use = [(actor, "share_use", "success"), (actor, "tag", "success")]
        assert (
            call("share-use", use, "GET", f"/dicomFile/{name}", params={**tag, "token": made["token"]}).status_code
            == 200
        )
        call("share-revoke", [("alice", "share_revoke", "success")], "DELETE", f"/shares/{made['id']}", headers=alice)
        assert (
            call("share-dead", [], "GET", f"/dicomFile/{name}", params={**tag, "token": made["token"]}).status_code
            == 401
        )
        assert call("logout", [("bob", "logout", "success")], "POST", "/auth/logout", headers=bob).status_code == 204

        body = httpx.get(server.url + "/admin/audit", params={"limit": 1000}, headers=admin, timeout=30).json()
    seen: dict[str, list[tuple[str, str, str]]] = {}
    for record in reversed(body["data"]):
        if record["request_id"] in expected:
            seen.setdefault(record["request_id"], []).append((record["actor"], record["action"], record["outcome"]))
    assert seen == {request_id: records for request_id, records in expected.items() if records}
    startup = [r for r in body["data"] if r["request_id"] is None]
    assert [(r["actor"], r["action"]) for r in startup] == [("lightbox:startup", "user_create")]
    dump = json.dumps(body)
    assert not [s for s in (ADMIN_PASSWORD, *PASSWORDS.values(), key["key"], made["token"]) if s in dump]
