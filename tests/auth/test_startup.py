"""Starting with access control: refusal beyond loopback without auth, the first administrator, the
``lightbox users``/``keys`` commands, and secrets kept out of logs under a bare ``uvicorn``."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.cli import main
from app.config import Settings
from app.index.audit import AuditQuery
from app.main import create_app
from app.services.audit_view import as_dict
from tests.auth.world import AUTH_ENV, bearer
from tests.e2e.server import LIGHTBOX, run_server

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTBOX_", "PROMETHEUS_"))}


def test_listening_beyond_loopback_without_auth_refuses_to_start(tmp_path: Path) -> None:
    env = {**CLEAN_ENV, "LIGHTBOX_HOST": "0.0.0.0", "LIGHTBOX_STORAGE_DIR": str(tmp_path / "s")}
    done = subprocess.run([LIGHTBOX], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "LIGHTBOX_HOST" in lines[0] and "LIGHTBOX_AUTH_REQUIRED" in lines[0]
    assert not (tmp_path / "s").exists()  # nothing was started or created
    with pytest.raises(RuntimeError, match="LIGHTBOX_AUTH_REQUIRED"):  # a bare uvicorn app.main:app too
        create_app(Settings(host="0.0.0.0"))
    create_app(Settings(host="0.0.0.0", auth_required=True))  # with auth it starts


def test_the_first_start_creates_admin_and_prints_the_password_once(tmp_path: Path) -> None:
    env = {"LIGHTBOX_AUTH_REQUIRED": "true", "LIGHTBOX_LOG_FORMAT": "json"}
    with run_server(tmp_path, env=env) as server:
        found = re.findall(r"administrator 'admin' with the password (\S+)", server.output())
        assert len(found) == 1
        password = found[0]
        assert len(password) >= 20
        token = httpx.post(f"{server.url}/auth/login", json={"username": "admin", "password": password})
        assert token.status_code == 200
        assert httpx.get(f"{server.url}/dicomFile").status_code == 401
    for line in server.log_lines():
        if line.startswith("{"):
            assert password not in line  # never in the JSON logs
    with run_server(tmp_path, storage=server.storage, env=env) as again:
        assert "password" not in again.output()  # shown once, never again


@pytest.mark.anyio
async def test_users_and_keys_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "storage"
    monkeypatch.setenv("LIGHTBOX_STORAGE_DIR", str(storage))
    monkeypatch.setattr(sys, "stdin", _Lines("erin-password-1\n"))

    async def run(*argv: str) -> tuple[int, str]:
        status = await anyio.to_thread.run_sync(main, list(argv))
        return status, capfd.readouterr().out

    assert (await run("users", "add", "erin", "--password-stdin"))[0] == 0
    status, out = await run("users", "add", "frank", "--admin")
    assert status == 0 and re.search(r"password: \S{20,}", out)
    assert (await run("users", "add", "erin"))[0] == 1  # taken
    status, out = await run("keys", "create", "erin", "--scope", "write", "--expires-days", "7")
    key = out.strip().splitlines()[-1]
    assert status == 0 and key.startswith("lbx_")
    status, out = await run("users", "list")
    assert "erin\tuser\tactive" in out and "frank\tadmin\tactive" in out

    app = create_app(Settings(storage_dir=storage, auth_required=True))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            me = await client.get("/auth/me", headers=bearer(key))
            assert me.json() == {"username": "erin", "role": "user"}
            key_id = key.split("_")[1]
            assert (await run("keys", "revoke", key_id))[0] == 0
            assert (await client.get("/auth/me", headers=bearer(key))).status_code == 401
            login = await client.post("/auth/login", json={"username": "erin", "password": "erin-password-1"})
            assert login.status_code == 200
            assert (await run("users", "disable", "erin"))[0] == 0
            assert (await client.get("/auth/me", headers=bearer(login.json()["access_token"]))).status_code == 401
            await app.state.audit.flush()
            records = [as_dict(r) for r in reversed((await app.state.audit.store.search(AuditQuery())).records)]
        await _no_generated_admin(app)
    operator = f"cli:{getpass.getuser()}"
    assert [(r["actor"], r["actor_type"], r["action"], r["outcome"], r["detail"]) for r in records] == [
        (operator, "user", "user_create", "success", {"user": "erin", "role": "user"}),
        (operator, "user", "user_create", "success", {"user": "frank", "role": "admin"}),
        (operator, "user", "user_create", "failure", {"user": "erin", "role": "user"}),  # taken
        (
            operator,
            "user",
            "key_create",
            "success",
            {"user": "erin", "scope": "write", "expires_in_days": 7, "key_id": key_id},
        ),
        (operator, "user", "key_revoke", "success", {"key_id": key_id, "user": "erin"}),
        ("erin", "user", "login", "success", {"via": "login"}),
        (operator, "user", "user_update", "success", {"user": "erin", "changed": "disabled", "disabled": True}),
    ]
    assert records[2]["reason"] == "conflict"
    assert "erin-password-1" not in json.dumps(records) and key.split("_")[2] not in json.dumps(records)


async def _no_generated_admin(app: FastAPI) -> None:
    """Users existed before the first start with auth: no `admin` was made."""
    assert await app.state.users.store.user("admin") is None


class _Lines:
    def __init__(self, text: str) -> None:
        self.text = text

    def readline(self) -> str:
        line, _, self.text = self.text.partition("\n")
        return line + "\n"


def test_tokens_stay_out_of_a_bare_uvicorn_log(tmp_path: Path) -> None:
    bare = [
        sys.executable,
        "-c",
        "import os, uvicorn; uvicorn.run('app.main:app', host='127.0.0.1', port=int(os.environ['LIGHTBOX_PORT']))",
    ]
    with run_server(tmp_path, env=AUTH_ENV, command=bare) as server:
        password = AUTH_ENV["LIGHTBOX_ADMIN_PASSWORD"]
        token = httpx.post(f"{server.url}/auth/login", json={"username": "admin", "password": password}).json()
        access = token["access_token"]
        assert httpx.get(f"{server.url}/auth/me", headers=bearer(access)).status_code == 200
        assert httpx.get(f"{server.url}/dicomFile", params={"token": access}).status_code == 401
        assert (
            httpx.get(f"{server.url}/dicomFile", params={"token": "lbs_0123456789abcdef_" + "A" * 43}).status_code
            == 401
        )
        assert httpx.get(f"{server.url}/auth/me", auth=("admin", password)).status_code == 200
        output = server.output()
    assert '"route":"/dicomFile","status":401' in output  # the access lines were written, without the query
    for secret in (access, "lbs_", "lbt_", password):
        assert secret not in output
    assert all(not line.startswith("{") or json.loads(line) for line in output.splitlines())
