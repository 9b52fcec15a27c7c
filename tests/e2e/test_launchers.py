"""Every way of starting the service behaves the same: ``lightbox``, ``python -m app`` and a bare
``uvicorn app.main:app`` (and ``--factory app.main:create_app``), each a real process.

- an invalid setting: one line on stderr naming the variable, exit code 2, no traceback;
- enumerated settings in any case (``LIGHTBOX_LOG_FORMAT=JSON``, ``LIGHTBOX_LOG_LEVEL=INFO``);
- JSON log lines with request ids, uvicorn's own lines included;
- no credential (``?token=``, ``Authorization``, ``Cookie``, API keys) in any line, on answers that
  succeed, fail (400, 404) or crash (500, with tracebacks quoting the URL and headers), and on
  requests so malformed that uvicorn refuses them itself (under both of its HTTP parsers).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import sample
from tests.e2e.server import LIGHTBOX, UVICORN, RunningServer, free_port, raw_request, run_server, status_of

ROOT = Path(__file__).resolve().parents[2]
QUERY_SECRET = "QuerySecret4711"
BEARER_SECRET = "BearerSecret0815"
PASSWORD_SECRET = "PasswordSecret42"
COOKIE_SECRET = "CookieSecret1234"
API_KEY = "lbx_k1_ApiKeySecret9876"
SECRETS = (
    QUERY_SECRET,
    BEARER_SECRET,
    PASSWORD_SECRET,
    base64.b64encode(f"ann:{PASSWORD_SECRET}".encode()).decode(),
    COOKIE_SECRET,
    "ApiKeySecret9876",
)

LAUNCHERS: dict[str, tuple[str, ...]] = {
    "lightbox": (LIGHTBOX,),
    "python -m app": (sys.executable, "-m", "app"),
    "uvicorn app.main:app": (UVICORN, "app.main:app"),
    "uvicorn --factory": (UVICORN, "--factory", "app.main:create_app"),
}


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize(("variable", "value"), [("LIGHTBOX_LOG_LEVEL", "verbose"), ("LIGHTBOX_PORT", "http")])
def test_an_invalid_setting_is_one_line_and_exit_code_2(
    tmp_path: Path, launcher: str, variable: str, value: str
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "LIGHTBOX_STORAGE_DIR": str(tmp_path / "storage"),
        "UVICORN_PORT": str(free_port()),
        variable: value,
    }
    result = subprocess.run(
        LAUNCHERS[launcher], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"lightbox: invalid {variable}: ") and result.stderr.count("\n") == 1, result.stderr
    assert value not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "storage").exists()  # refused before anything was touched


BROKEN_APP = (UVICORN, "--app-dir", str(ROOT), "tests.e2e.broken_app:app")
SERVERS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    # the design's run command, with settings spelled in capitals
    "uvicorn app.main:app": ((UVICORN, "app.main:app"), {"LIGHTBOX_LOG_FORMAT": "JSON", "LIGHTBOX_LOG_LEVEL": "INFO"}),
    # the same app plus a route that crashes, under both of uvicorn's HTTP parsers
    "uvicorn broken_app (httptools)": ((*BROKEN_APP, "--http", "httptools"), {"LIGHTBOX_LOG_FORMAT": "json"}),
    "uvicorn broken_app (h11)": ((*BROKEN_APP, "--http", "h11"), {"LIGHTBOX_LOG_FORMAT": "Json"}),
    "lightbox": ((LIGHTBOX,), {"LIGHTBOX_LOG_FORMAT": "json", "LIGHTBOX_LOG_LEVEL": "Info"}),
}


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    command, env = SERVERS[request.param]
    with run_server(tmp_path_factory.mktemp("launcher"), command=command, env=env) as running:
        yield running


def credentials(request_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {BEARER_SECRET}", "Cookie": f"lightbox_session={COOKIE_SECRET}",
            "X-API-Key": API_KEY, "X-Request-ID": request_id}  # fmt: skip


@pytest.fixture(scope="module")
def traffic(server: RunningServer) -> dict[str, int]:
    """Requests carrying credentials to routes that answer 200, 201, 400, 404 and 500; their statuses."""
    statuses: dict[str, int] = {}
    secret = {"token": QUERY_SECRET}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        stored = http.post(
            "/upload", params=secret, headers=credentials("rid-upload"),
            files={"file": ("MR_small.dcm", sample("MR_small.dcm").read_bytes())},
        )  # fmt: skip
        statuses["rid-upload"] = stored.status_code
        name = stored.json()["name"]
        requests: dict[str, tuple[str, dict[str, str]]] = {
            "rid-health": ("/healthz", {}),
            "rid-tag": (f"/dicomFile/{name}", {"tag": "Rows"}),
            "rid-png": (f"/dicomFile/{name}", {"png": ""}),
            "rid-bad-tag": (f"/dicomFile/{name}", {"tag": "(zz"}),
            "rid-bad-frame": (f"/dicomFile/{name}", {"png": "", "frame": "0"}),
            "rid-no-file": ("/dicomFile/nope.dcm", {"tag": "Rows"}),
            "rid-no-route": ("/no/such/route", {}),
            "rid-broken": ("/broken", {}),
            "rid-after-crash": ("/healthz", {}),  # the same keep-alive connection still serves
        }
        basic = http.get(
            "/healthz", params=secret, auth=("ann", PASSWORD_SECRET), headers={"X-Request-ID": "rid-basic"}
        )
        statuses["rid-basic"] = basic.status_code
        for request_id, (path, params) in requests.items():
            answer = http.get(path, params={**params, **secret}, headers=credentials(request_id))
            statuses[request_id] = answer.status_code
    # what uvicorn refuses itself: a malformed request line, and a malformed header after the credentials
    for raw in (
        f"GET /dicomFile/x.dcm?token={QUERY_SECRET} HTTP/1.1 trailing\r\nHost: x\r\n\r\n",
        f"GET /healthz?token={QUERY_SECRET} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BEARER_SECRET}\r\n"
        f"Bad Header\x01: {API_KEY}\r\n\r\n",
    ):
        statuses[raw[:12]] = status_of(raw_request(server.port, raw.encode()))
    return statuses


def log_records(server: RunningServer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log_lines()]  # fails on any line that is not JSON


def test_requests_were_answered_as_expected(server: RunningServer, traffic: dict[str, int]) -> None:
    broken = 500 if "broken_app" in str(server.process.args) else 404
    assert traffic == {
        "rid-upload": 201, "rid-health": 200, "rid-tag": 200, "rid-png": 200, "rid-bad-tag": 400,
        "rid-bad-frame": 400, "rid-no-file": 404, "rid-no-route": 404, "rid-broken": broken, "rid-basic": 200,
        "rid-after-crash": 200,
        "GET /dicomFi": 400, "GET /healthz": 400,
    }  # fmt: skip


def test_every_line_is_json_and_access_lines_carry_the_request_id(
    server: RunningServer, traffic: dict[str, int]
) -> None:
    records = log_records(server)
    assert any(r["logger"] == "uvicorn.error" and "startup complete" in r["message"] for r in records)
    access_lines = [r for r in records if r["logger"] == "uvicorn.access" and "request_id" in r]
    access = {r["request_id"]: r for r in access_lines}
    assert len(access) == len(access_lines), "a request was logged twice (the server's own line and ours)"
    for request_id, status in traffic.items():
        if request_id.startswith("rid-"):
            assert access[request_id]["status"] == status, request_id
            assert "?" not in access[request_id]["message"]
    assert access["rid-tag"]["route"] == "/dicomFile/{name}" and access["rid-tag"]["method"] == "GET"
    assert access["rid-no-route"]["message"] == "GET - 404"


def test_no_credential_is_logged(server: RunningServer, traffic: dict[str, int]) -> None:
    output = server.output()
    assert traffic and len(output.splitlines()) > len(traffic)  # the requests were logged
    for secret in SECRETS:
        assert secret not in output


def test_a_crash_logs_one_traceback_with_credentials_redacted(server: RunningServer, traffic: dict[str, int]) -> None:
    """Only the crashing route logs a traceback: once, by the error table's handler (not again by uvicorn)."""
    crashes = [r for r in log_records(server) if "exception" in r]
    assert len(crashes) == (1 if traffic["rid-broken"] == 500 else 0)
    for crash in crashes:
        assert crash["request_id"] == "rid-broken" and crash["logger"] == "lightbox.errors"
        assert "RuntimeError: bug while serving" in crash["exception"]
        assert "token=[redacted]" in crash["exception"] and "authorization', '[redacted]" in crash["exception"]
