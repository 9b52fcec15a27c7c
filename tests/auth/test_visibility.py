"""Visibility is decided in the index: a grant or share covers only its grantor's instances of a study."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import UID

from tests.auth.world import STUDY_A, World, bearer
from tests.conftest import sample

pytestmark = pytest.mark.anyio
TAG = {"tag": "(0010,0020)"}


def same_study_other_file(tmp_path: Path) -> Path:
    """A file anyone could make: alice's Study Instance UID, a new SOP Instance UID (0008,0018)."""
    dataset = dcmread(sample("CT_small.dcm"))
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.8.498.1")
    path = tmp_path / "forged.dcm"
    dataset.save_as(path)
    return path


async def names(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    answer = await client.get("/dicomFile", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return [row["name"] for row in answer.json()["data"]]


async def test_sharing_a_borrowed_study_uid_exposes_nothing_of_the_owner(
    auth_client: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    forged = same_study_other_file(tmp_path)
    stored = await auth_client.post(
        "/upload", files={"file": ("forged.dcm", forged.read_bytes())}, headers=world.as_("carol")
    )
    assert stored.status_code == 201
    carols = stored.json()["name"]
    share = await auth_client.post(
        "/shares", json={"study_instance_uid": STUDY_A, "expires_in": 600}, headers=world.as_("carol")
    )
    assert share.status_code == 201
    token = share.json()["token"]
    assert await names(auth_client, bearer(token)) == [carols]
    assert await names(auth_client, bearer(token), StudyInstanceUID=STUDY_A) == [carols]
    stolen = await auth_client.get(f"/dicomFile/{world.name_a}", params={**TAG, "token": token})
    assert stolen.status_code == 404
    # a grant of "that study" by carol gives bob (who already reads alice's) carol's file, and dave nothing of alice's
    await auth_client.post(
        "/admin/users", json={"username": "dave", "password": "dave-password"}, headers=world.as_("admin")
    )
    grant = await auth_client.post(
        "/grants", json={"study_instance_uid": STUDY_A, "username": "dave"}, headers=world.as_("carol")
    )
    assert grant.status_code == 201
    dave = (await auth_client.post("/auth/login", json={"username": "dave", "password": "dave-password"})).json()
    auth_client.cookies.clear()
    assert await names(auth_client, bearer(dave["access_token"])) == [carols]


async def test_only_the_owner_or_an_admin_grants_and_write_grants_allow_deleting(
    auth_client: httpx.AsyncClient, world: World
) -> None:
    body = {"study_instance_uid": STUDY_A, "username": "carol", "access": "write"}
    assert (await auth_client.post("/grants", json=body, headers=world.as_("bob"))).status_code == 403  # reads only
    assert (await auth_client.post("/grants", json=body, headers=world.as_("carol"))).status_code == 404  # sees nothing
    assert (await auth_client.post("/grants", json=body, headers=bearer(world.read_key))).status_code == 403
    assert (await auth_client.post("/grants", json=body, headers=world.as_("alice"))).status_code == 201
    assert (await auth_client.post("/grants", json=body, headers=world.as_("alice"))).status_code == 409
    listed = (await auth_client.get("/grants", headers=world.as_("carol"))).json()["data"]
    assert [(g["grantor"], g["username"], g["access"]) for g in listed] == [("alice", "carol", "write")]
    # bob cannot share what he may only read; carol (write grant) can
    share_body = {"study_instance_uid": STUDY_A, "expires_in": 60}
    assert (await auth_client.post("/shares", json=share_body, headers=world.as_("bob"))).status_code == 403
    assert (await auth_client.post("/shares", json=share_body, headers=world.as_("carol"))).status_code == 201
    assert (await auth_client.delete(f"/dicomFile/{world.name_a}", headers=world.as_("bob"))).status_code == 403
    assert (await auth_client.delete(f"/dicomFile/{world.name_a}", headers=world.as_("carol"))).status_code == 204
    assert (
        await auth_client.get(f"/dicomFile/{world.name_a}", params=TAG, headers=world.as_("alice"))
    ).status_code == 404


async def test_an_administrators_grant_covers_every_owner(auth_client: httpx.AsyncClient, world: World) -> None:
    assert world.name_a not in await names(auth_client, world.as_("carol"))
    grant = await auth_client.post(
        "/grants", json={"study_instance_uid": STUDY_A, "username": "carol"}, headers=world.as_("admin")
    )
    assert grant.status_code == 201
    assert world.name_a in await names(auth_client, world.as_("carol"))
    assert world.name_b not in await names(auth_client, world.as_("carol"))


async def test_duplicates_and_conflicts_are_judged_per_owner(auth_client: httpx.AsyncClient, world: World) -> None:
    """carol uploading alice's exact file stores her own copy: nothing says that alice has it."""
    data = sample("CT_small.dcm").read_bytes()
    first = await auth_client.post("/upload", files={"file": ("ct.dcm", data)}, headers=world.as_("carol"))
    assert first.status_code == 201 and first.json()["name"] != world.name_a
    again = await auth_client.post("/upload", files={"file": ("ct.dcm", data)}, headers=world.as_("carol"))
    assert again.status_code == 200 and again.json()["name"] == first.json()["name"]


async def test_metrics_and_user_admin_need_an_administrator(auth_client: httpx.AsyncClient, world: World) -> None:
    assert (await auth_client.get("/metrics")).status_code == 401
    assert (await auth_client.get("/metrics", headers=world.as_("alice"))).status_code == 403
    assert (await auth_client.get("/metrics", headers=world.as_("admin"))).status_code == 200
    assert (await auth_client.get("/admin/users", headers=world.as_("alice"))).status_code == 403
    users = (await auth_client.get("/admin/users", headers=world.as_("admin"))).json()["data"]
    assert {u["username"] for u in users} == {"admin", "alice", "bob", "carol"}
    assert all("password" not in u or u["password"] is None for u in users)
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert (await auth_client.get(path)).status_code == 200, path
    gone = await auth_client.delete("/admin/users/bob", headers=world.as_("admin"))
    assert gone.status_code == 204
    assert (await auth_client.get("/auth/me", headers=world.as_("bob"))).status_code == 401
    assert (await auth_client.get("/auth/me", headers=bearer(world.share_b))).status_code == 401
