"""Two replicas (two apps, each with its own per-process caches) on one PostgreSQL index and one storage.

Every cache a replica keeps is warmed on replica B (parsed headers, tag answers, renders, WADO-RS
metadata, credentials just checked); then a grant, a share, an API key, a login session and a user
are revoked and a file deleted through replica A. Replica B refuses each at once, with no wait: its
caches hold only immutable bytes keyed by stored name, and every access asks the index first
(ARCHITECTURE rule 10; issue 12, "check the index on every access"). A time-based cache would fail here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from app.auth import keys
from app.config import Settings
from app.main import create_app
from tests import postgres
from tests.auth.world import ADMIN_PASSWORD, STUDY_A, World, bearer, build, login

pytestmark = pytest.mark.anyio
TAG = {"tag": "(0010,0010)"}


@pytest.fixture
async def replicas(tmp_path: Path, postgres_server: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    with postgres.fresh_database(postgres_server) as url:
        async with AsyncExitStack() as stack:
            clients = []
            for name in ("a", "b"):
                settings = Settings(
                    storage_dir=tmp_path / "shared",
                    database_url=url,
                    auth_required=True,
                    admin_password=ADMIN_PASSWORD,
                    answer_cache_seconds=3600,  # were it used on a shared index, B would answer from memory
                    sweep_interval_seconds=0,
                )
                application = create_app(settings)
                await stack.enter_async_context(application.router.lifespan_context(application))
                transport = httpx.ASGITransport(app=application)
                clients.append(
                    await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url=f"http://{name}"))
                )
            yield clients[0], clients[1]


async def reads(client: httpx.AsyncClient, name: str, headers: dict[str, str], params: dict[str, str]) -> list[int]:
    """A tag, a render, the metadata, a download and WADO-RS metadata of one file: every cached path."""
    url = f"/dicomFile/{name}"
    answers = [
        await client.get(url, params={**TAG, **params}, headers=headers),
        await client.get(url, params={"png": "", **params}, headers=headers),
        await client.get(url, params={"metadata": "", **params}, headers=headers),
        await client.get(url, params={"download": "", **params}, headers=headers),
        await client.get(f"/dicom-web/studies/{STUDY_A}/metadata", params=params, headers=headers),
    ]
    return [answer.status_code for answer in answers]


ALL_OK = [200] * 5


async def test_revocations_and_deletes_through_one_replica_hold_at_once_on_the_other(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = replicas
    world: World = await build(a)
    name = world.name_a
    share = {"token": world.share_a}
    session = await login(b, "carol", "carol-password-333")
    # every cache of B warm, for each kind of caller
    assert await reads(b, name, world.as_("bob"), {}) == ALL_OK  # a grantee
    assert await reads(b, name, {}, share) == ALL_OK  # a share link
    assert await reads(b, name, bearer(world.read_key), {}) == ALL_OK  # an API key
    assert await reads(b, name, world.as_("admin"), {}) == ALL_OK
    assert (await b.get("/auth/me", headers=bearer(session))).status_code == 200

    assert (await a.delete(f"/grants/{world.grant_id}", headers=world.as_("alice"))).status_code == 204
    assert await reads(b, name, world.as_("bob"), {}) == [404] * 5

    share_id = next(row["id"] for row in (await a.get("/shares", headers=world.as_("alice"))).json()["data"])
    parsed = keys.parse(world.share_a)
    assert parsed is not None and share_id == parsed.id
    assert (await a.delete(f"/shares/{share_id}", headers=world.as_("alice"))).status_code == 204
    assert await reads(b, name, {}, share) == [401] * 5

    key_id = next(row["id"] for row in (await a.get("/auth/keys", headers=world.as_("alice"))).json()["data"])
    assert (await a.delete(f"/auth/keys/{key_id}", headers=world.as_("alice"))).status_code == 204
    assert await reads(b, name, bearer(world.read_key), {}) == [401] * 5

    assert (await a.post("/auth/logout", headers=bearer(session))).status_code == 204
    assert (await b.get("/auth/me", headers=bearer(session))).status_code == 401

    disabled = await a.patch("/admin/users/alice", json={"disabled": True}, headers=world.as_("admin"))
    assert disabled.status_code == 200
    assert (await b.get("/auth/me", headers=world.as_("alice"))).status_code == 401

    assert await reads(b, name, world.as_("admin"), {}) == ALL_OK  # warm again, just before the delete
    assert (await a.delete(f"/dicomFile/{name}", headers=world.as_("admin"))).status_code == 204
    gone = await reads(b, name, world.as_("admin"), {})
    assert gone == [404] * 5
