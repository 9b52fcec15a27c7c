"""Single-user mode (the default, on loopback): every call is the local administrator, as before."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.world import STUDY_A
from tests.conftest import sample, upload

pytestmark = pytest.mark.anyio


async def test_every_call_is_the_local_administrator(client: httpx.AsyncClient) -> None:
    assert (await client.get("/auth/me")).json() == {"username": "local", "role": "admin"}
    name = await upload(client, sample("CT_small.dcm"))
    assert (await client.get(f"/dicomFile/{name}", params={"tag": "(0010,0020)"})).status_code == 200
    assert (await client.get("/metrics")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "securitySchemes" not in spec.get("components", {})  # no credentials are asked for


async def test_accounts_can_be_prepared_but_grants_and_shares_need_one(client: httpx.AsyncClient) -> None:
    await upload(client, sample("CT_small.dcm"))
    created = await client.post("/admin/users", json={"username": "alice", "role": "admin"})
    assert created.status_code == 201 and len(created.json()["password"]) >= 20  # generated, shown once
    for path, body in (
        ("/shares", {"study_instance_uid": STUDY_A, "expires_in": 60}),
        ("/grants", {"study_instance_uid": STUDY_A, "username": "alice"}),
        ("/auth/keys", {"name": "k", "scope": "read"}),
    ):
        refused = await client.post(path, json=body)
        assert refused.status_code == 400 and "single-user" in refused.json()["error"], path
