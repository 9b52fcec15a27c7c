"""The Postman collection, run by Newman (pinned in postman/package-lock.json) against a real server.

It must cover every public operation of the OpenAPI document, assert something of every answer,
and pass from the first request to the last.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.main import create_app
from tests.e2e.postman_files import write_files
from tests.e2e.server import run_server

POSTMAN = Path(__file__).resolve().parents[2] / "postman"
COLLECTION = POSTMAN / "lightbox.postman_collection.json"
ENVIRONMENT = POSTMAN / "lightbox.postman_environment.json"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
AUTH_FOLDERS = "Auth"  # folders whose names start so run against a server with LIGHTBOX_AUTH_REQUIRED=true


def requests(items: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(folder name, item) for every request, in run order."""
    for item in items:
        for child in item.get("item", []):
            if "request" in child:
                yield item["name"], child


def template_of(path: list[str]) -> str:
    """``["dicomFile", "{{ctName}}"]`` -> ``/dicomFile/{name}``, ``["grants", ":grant_id"]`` ->
    ``/grants/{grant_id}`` (a Postman path variable): the OpenAPI path a request exercises."""

    def segment(seg: str) -> str:
        if re.fullmatch(r"\{\{\w+\}\}", seg):
            return "{name}"
        return "{" + seg[1:] + "}" if seg.startswith(":") else seg

    return "/" + "/".join(segment(seg) for seg in path)


def folder_names(collection: dict[str, Any], auth: bool) -> list[str]:
    return [f["name"] for f in collection["item"] if f["name"].startswith(AUTH_FOLDERS) == auth]


def environment_value(key: str) -> str:
    values = json.loads(ENVIRONMENT.read_text())["values"]
    value: str = next(v["value"] for v in values if v["key"] == key)
    return value


@pytest.fixture(scope="module")
def collection() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(COLLECTION.read_text())
    return loaded


def test_collection_is_v2_1_and_every_request_asserts_status(collection: dict[str, Any]) -> None:
    assert collection["info"]["schema"] == SCHEMA
    for _, item in requests(collection["item"]):
        scripts = ["\n".join(e["script"]["exec"]) for e in item.get("event", []) if e["listen"] == "test"]
        assert scripts, f"{item['name']} has no test script"
        assert "pm.response.to.have.status(" in scripts[0], item["name"]
        assert item["request"]["url"]["host"] == ["{{baseUrl}}"], item["name"]


def test_collection_covers_every_public_operation(collection: dict[str, Any]) -> None:
    document = create_app(Settings()).openapi()
    operations = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    covered = {
        (item["request"]["method"], template_of(item["request"]["url"]["path"]))
        for _, item in requests(collection["item"])
    }
    assert operations - covered == set()
    queries = {q["key"] for _, item in requests(collection["item"]) for q in item["request"]["url"].get("query", [])}
    assert {"tag", "png", "jpeg", "size", "window", "frame", "quality", "metadata", "download"} <= queries
    assert {"Modality", "PatientName", "StudyDate", "SOPInstanceUID", "limit", "offset"} <= queries


def test_auth_and_dicomweb_folders_hold_their_operations(collection: dict[str, Any]) -> None:
    auth = {
        template_of(i["request"]["url"]["path"]) for f, i in requests(collection["item"]) if f.startswith(AUTH_FOLDERS)
    }
    assert {
        "/auth/login",
        "/auth/keys/{key_id}",
        "/admin/users/{username}",
        "/grants/{grant_id}",
        "/shares/{share_id}",
        "/admin/audit",
    } <= auth
    dicomweb = {
        template_of(i["request"]["url"]["path"]) for f, i in requests(collection["item"]) if f.startswith("DICOMweb")
    }
    assert {
        "/dicom-web/studies",
        "/dicom-web/wado",
        "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
    } <= dicomweb
    for folder, item in requests(collection["item"]):
        if folder.startswith(AUTH_FOLDERS):  # credentials are named per request; a session cookie never stands in
            assert item["protocolProfileBehavior"] == {"disableCookies": True}, item["name"]
            assert item["request"]["auth"]["type"] in {"bearer", "noauth"}, item["name"]


def newman(url: str, folders: list[str], files: Path, report: Path) -> dict[str, Any]:
    """One Newman run of ``folders`` (in collection order) against ``url``; its JSON report's stats."""
    selected = [arg for folder in folders for arg in ("--folder", folder)]
    result = subprocess.run(
        [
            str(NEWMAN), "run", str(COLLECTION), "--environment", str(ENVIRONMENT), *selected,
            "--env-var", f"baseUrl={url}", "--working-dir", str(files),
            "--reporters", "cli,json", "--reporter-json-export", str(report),
            "--color", "off", "--disable-unicode", "--timeout-request", "60000",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{folders}:\n{result.stdout}\n{result.stderr}"
    print(result.stdout[-2500:])  # the summary table, for the record (pytest -s)
    stats: dict[str, Any] = json.loads(report.read_text())["run"]["stats"]
    return stats


def check(stats: dict[str, Any], expected: int) -> None:
    assert stats["requests"]["total"] >= expected
    assert stats["requests"]["failed"] == 0
    assert stats["assertions"]["failed"] == 0
    assert stats["assertions"]["total"] > 3 * expected
    assert stats["testScripts"]["failed"] == 0 and stats["prerequestScripts"]["failed"] == 0


def test_newman_runs_the_collection_green_against_a_real_server(tmp_path: Path, collection: dict[str, Any]) -> None:
    """Single-user folders against a default server, then the Auth folders against one with auth
    required and the environment's ``adminPassword``; twice each (every run cleans up after itself)."""
    assert NEWMAN.exists(), "newman is missing: scripts/test installs it into postman/node_modules (npm ci)"
    files = write_files(tmp_path / "files")
    report = tmp_path / "newman.json"
    auth_env = {"LIGHTBOX_AUTH_REQUIRED": "true", "LIGHTBOX_ADMIN_PASSWORD": environment_value("adminPassword")}
    for auth, env in ((False, {}), (True, auth_env)):
        folders = folder_names(collection, auth)
        expected = sum(1 for folder, _ in requests(collection["item"]) if folder in folders)
        with run_server(tmp_path, storage=tmp_path / f"storage-{auth}", env=env) as server:
            for _ in (1, 2):
                check(newman(server.url, folders, files, report), expected)
