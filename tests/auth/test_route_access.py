"""Every route that reads or changes a stored object, found by walking the app's routes (so a route
added later is covered without editing this test): anonymous 401, another user 404, a share token of
another study 404, a read-only grant (or key, or share) 403 on writes. Against the ASGI app and a real
uvicorn started by the ``lightbox`` command with LIGHTBOX_AUTH_REQUIRED=true."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from app.config import Settings
from app.main import create_app
from tests.auth.world import AUTH_ENV, STUDY_A, World, bearer, build
from tests.conftest import sample
from tests.e2e.server import run_server

pytestmark = pytest.mark.anyio

#: Routes that touch no stored object: probes, docs, and the access-control routes (tested on their own).
OPEN = {"/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect"}
ACCESS = ("/auth/", "/admin/", "/grants", "/shares", "/metrics")
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
CT = dcmread(sample("CT_small.dcm"), stop_before_pixels=True)


@dataclass(frozen=True)
class Case:
    method: str
    template: str
    required_query: tuple[str, ...] = ()  # e.g. WADO-URI's requestType, studyUID, seriesUID, objectUID

    @property
    def is_search(self) -> bool:
        """A QIDO-RS search (within a study or series, too) answers a collection, not one object."""
        return self.method == "GET" and self.template.endswith(("/studies", "/series", "/instances"))

    @property
    def params(self) -> list[str]:
        return [*re.findall(r"{(\w+)(?::\w+)?}", self.template), *self.required_query]

    def query(self, world: World) -> dict[str, str]:
        return {name: self.value(name, world) for name in self.required_query}

    def url(self, world: World) -> str:
        return re.sub(r"{(\w+)(?::\w+)?}", lambda m: self.value(m[1], world), self.template)

    @staticmethod
    def value(param: str, world: World) -> str:
        """A value naming alice's stored object, by the parameter's name."""
        lowered = param.lower()
        if lowered == "name":
            return world.name_a
        if "study" in lowered:
            return STUDY_A
        if "series" in lowered:
            return str(CT.SeriesInstanceUID)
        if "instance" in lowered or "sop" in lowered or "object" in lowered:
            return str(CT.SOPInstanceUID)
        if lowered == "tag":
            return "7FE00010"  # Pixel Data, a bulk element every image has
        if lowered == "requesttype":
            return "WADO"
        return "1"


def data_routes() -> list[Case]:
    """Every operation the app serves (read from its OpenAPI document, which FastAPI builds from the
    routes, nested routers and prefixes included), less probes, docs and the access routes."""
    spec = create_app(Settings(auth_required=True)).openapi()
    cases: list[Case] = []
    for path, operations in spec["paths"].items():
        if path in OPEN or path.startswith(ACCESS):
            continue
        for method in sorted(operations):
            parameters = operations[method].get("parameters", [])
            required = tuple(p["name"] for p in parameters if p.get("in") == "query" and p.get("required"))
            cases.append(Case(method.upper(), path, required))
    assert {("GET", "/dicomFile/{name}"), ("DELETE", "/dicomFile/{name}"), ("POST", "/upload")} <= {
        (c.method, c.template) for c in cases
    }
    return cases


async def send(
    client: httpx.AsyncClient, case: Case, world: World, headers: dict[str, str], token: str | None = None
) -> httpx.Response:
    asks_for_a_tag = case.method == "GET" and case.template.startswith("/dicomFile/")
    params = {"tag": "(0010,0020)"} if asks_for_a_tag else case.query(world)
    if token is not None:
        params["token"] = token
    files = {"file": ("CT_small.dcm", sample("CT_small.dcm").read_bytes())} if case.method in ("POST", "PUT") else None
    return await client.request(case.method, case.url(world), params=params, headers=headers, files=files)


async def check_every_route(client: httpx.AsyncClient) -> int:
    world = await build(client)
    checked = 0
    for case in data_routes():
        where = f"{case.method} {case.template}"
        anonymous = await send(client, case, world, {})
        assert anonymous.status_code == 401, where
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="lightbox"', where
        assert set(anonymous.json()) == {"error"}, where
        if case.method in WRITES:
            for who, headers in (
                ("alice's read key", bearer(world.read_key)),
                ("alice's share", bearer(world.share_a)),
                *([("bob's read grant", world.as_("bob"))] if case.params else []),
            ):
                assert (await send(client, case, world, headers)).status_code == 403, f"{where}: {who}"
            if case.params and case.method != "POST":  # a stored object another user cannot see: as absent
                # (a POST into a named study, STOW-RS, creates: another user's study is as absent, and
                # what is stored is the caller's own)
                assert (await send(client, case, world, world.as_("carol"))).status_code == 404, where
                assert (await send(client, case, world, bearer(world.share_b))).status_code == 404, where
        elif case.params and not case.is_search:
            for who, headers, token in (
                ("carol", world.as_("carol"), None),
                ("bob's share (bearer)", bearer(world.share_b), None),
                ("bob's share (?token=)", {}, world.share_b),
            ):
                assert (await send(client, case, world, headers, token)).status_code == 404, f"{where}: {who}"
            for who, headers, token in (
                ("alice", world.as_("alice"), None),
                ("bob's read grant", world.as_("bob"), None),
                ("alice's share (?token=)", {}, world.share_a),
                ("alice's read key", bearer(world.read_key), None),
            ):
                assert (await send(client, case, world, headers, token)).is_success, f"{where}: {who}"
        else:  # a collection (a list, a search): others' objects are simply not in it
            for who, headers, token in (("carol", world.as_("carol"), None), ("bob's share", {}, world.share_b)):
                answer = await send(client, case, world, headers, token)
                assert answer.is_success, f"{where}: {who}"
                assert world.name_a not in answer.text and STUDY_A not in answer.text, f"{where}: {who}"
            for who, headers, token in (("bob's grant", world.as_("bob"), None), ("alice's share", {}, world.share_a)):
                answer = await send(client, case, world, headers, token)
                assert answer.is_success and STUDY_A in answer.text, f"{where}: {who}"
        checked += 1
    deleted = await client.delete(f"/dicomFile/{world.name_a}", headers=world.as_("alice"))
    assert deleted.status_code == 204  # the owner may, after all that
    return checked


async def test_every_data_route_in_process(auth_client: httpx.AsyncClient) -> None:
    assert await check_every_route(auth_client) >= 3


async def test_every_data_route_on_a_real_server(tmp_path: Path) -> None:
    with run_server(tmp_path, env=AUTH_ENV) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            assert await check_every_route(client) >= 3
        output = server.output()
    for secret in ("lbs_", "lbt_", "lbx_", AUTH_ENV["LIGHTBOX_ADMIN_PASSWORD"]):
        assert secret not in output  # tokens, keys and passwords never reach a log line
