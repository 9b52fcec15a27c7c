"""A small world of callers for the access-control tests, built through the public API only.

alice owns study A (CT_small.dcm), bob owns study B (MR_small.dcm) and holds a read grant on A,
carol has nothing; alice has a share link to A and a read-only key, bob a share link to B.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import httpx
from pydicom import dcmread

from tests.conftest import sample

ADMIN_PASSWORD = "admin-password-for-tests"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22", "carol": "carol-password-333"}
STUDY_A = str(dcmread(sample("CT_small.dcm"), stop_before_pixels=True).StudyInstanceUID)
STUDY_B = str(dcmread(sample("MR_small.dcm"), stop_before_pixels=True).StudyInstanceUID)
AUTH_ENV = {"LIGHTBOX_AUTH_REQUIRED": "true", "LIGHTBOX_ADMIN_PASSWORD": ADMIN_PASSWORD}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclass
class World:
    tokens: dict[str, str] = field(default_factory=dict)  # user -> login token
    name_a: str = ""  # alice's file in study A
    name_b: str = ""  # bob's file in study B
    share_a: str = ""  # alice's share token of study A
    share_b: str = ""  # bob's share token of study B
    read_key: str = ""  # alice's read-only API key
    grant_id: int = 0  # alice -> bob, read, study A

    def as_(self, user: str) -> dict[str, str]:
        return bearer(self.tokens[user])


async def login(client: httpx.AsyncClient, user: str, password: str) -> str:
    response = await client.post("/auth/login", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    client.cookies.clear()  # the tests name their credentials; the session cookie has its own test
    token: str = response.json()["access_token"]
    return token


async def upload_as(client: httpx.AsyncClient, headers: dict[str, str], file: str) -> str:
    response = await client.post("/upload", files={"file": (file, sample(file).read_bytes())}, headers=headers)
    assert response.status_code == 201, response.text
    name: str = response.json()["name"]
    return name


async def build(client: httpx.AsyncClient) -> World:
    world = World()
    world.tokens["admin"] = await login(client, "admin", ADMIN_PASSWORD)
    for user, password in PASSWORDS.items():
        created = await client.post(
            "/admin/users", json={"username": user, "password": password}, headers=world.as_("admin")
        )
        assert created.status_code == 201, created.text
        world.tokens[user] = await login(client, user, password)
    world.name_a = await upload_as(client, world.as_("alice"), "CT_small.dcm")
    world.name_b = await upload_as(client, world.as_("bob"), "MR_small.dcm")
    grant = await client.post(
        "/grants", json={"study_instance_uid": STUDY_A, "username": "bob", "access": "read"}, headers=world.as_("alice")
    )
    assert grant.status_code == 201, grant.text
    world.grant_id = grant.json()["id"]
    for user, study in (("alice", STUDY_A), ("bob", STUDY_B)):
        share = await client.post(
            "/shares", json={"study_instance_uid": study, "expires_in": 3600}, headers=world.as_(user)
        )
        assert share.status_code == 201, share.text
        setattr(world, "share_a" if user == "alice" else "share_b", share.json()["token"])
    key = await client.post("/auth/keys", json={"name": "viewer", "scope": "read"}, headers=world.as_("alice"))
    assert key.status_code == 201, key.text
    world.read_key = key.json()["key"]
    return world
