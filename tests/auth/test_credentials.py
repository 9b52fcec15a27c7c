"""Each kind of credential, its expiry and its revocation (effective on the very next request)."""

from __future__ import annotations

import hmac

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Table, update

from app.auth import keys
from app.index.schema import api_keys, login_tokens
from tests.auth.world import ADMIN_PASSWORD, PASSWORDS, STUDY_A, World, basic, bearer

pytestmark = pytest.mark.anyio
TAG = {"tag": "(0010,0020)"}


async def expire(app: FastAPI, table: Table, row_id: str) -> None:
    """Move a row's expiry into the past, as the clock would (no waiting for hours)."""
    async with app.state.index.engine.begin() as conn:
        await conn.execute(update(table).where(table.c.id == row_id).values(expires_at_us=1))


async def test_login_answers_the_documented_shape_and_cookie(auth_client: httpx.AsyncClient) -> None:
    form = await auth_client.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert form.status_code == 200, form.text
    body = form.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "csrf_token"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 12 * 3600
    cookie = form.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    me = await auth_client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json() == {"username": "admin", "role": "admin"}


async def test_failed_login_is_401_with_the_challenge(auth_client: httpx.AsyncClient) -> None:
    for credentials in ({"username": "admin", "password": "s3cret-guess"}, {"username": "nobody", "password": "x"}):
        failed = await auth_client.post("/auth/login", json=credentials)
        assert failed.status_code == 401 and failed.headers["www-authenticate"] == 'Bearer realm="lightbox"'
        assert set(failed.json()) == {"error"} and "s3cret-guess" not in failed.text


async def test_logins_are_rate_limited_per_user_name(auth_client: httpx.AsyncClient) -> None:
    statuses = [
        (await auth_client.post("/auth/login", json={"username": "admin", "password": f"guess{i}"})).status_code
        for i in range(5)
    ]
    assert statuses == [401] * 5
    limited = await auth_client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    # Basic credentials are logins too: the same budget
    basic_try = await auth_client.get("/auth/me", headers=basic("admin", ADMIN_PASSWORD))
    assert basic_try.status_code == 429


async def test_logins_are_rate_limited_per_client_address(auth_client: httpx.AsyncClient) -> None:
    for i in range(20):
        answer = await auth_client.post("/auth/login", json={"username": f"user{i}", "password": "nope-nope"})
        assert answer.status_code == 401
    limited = await auth_client.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert limited.status_code == 429 and "retry-after" in limited.headers


async def test_basic_with_password_or_api_key(auth_client: httpx.AsyncClient, world: World) -> None:
    by_password = await auth_client.get(
        f"/dicomFile/{world.name_a}", params=TAG, headers=basic("alice", PASSWORDS["alice"])
    )
    assert by_password.status_code == 200
    by_key = await auth_client.get(f"/dicomFile/{world.name_a}", params=TAG, headers=basic("alice", world.read_key))
    assert by_key.status_code == 200
    wrong_user = await auth_client.get(f"/dicomFile/{world.name_a}", params=TAG, headers=basic("bob", world.read_key))
    assert wrong_user.status_code == 401
    garbage = await auth_client.get("/dicomFile", headers={"Authorization": "Basic !!!"})
    assert garbage.status_code == 401


async def test_a_bad_authorization_header_never_falls_back_to_the_query_token(
    auth_client: httpx.AsyncClient, world: World
) -> None:
    answer = await auth_client.get(
        f"/dicomFile/{world.name_a}", params={**TAG, "token": world.share_a}, headers=bearer("lbx_nonsense")
    )
    assert answer.status_code == 401


async def test_session_cookie_needs_the_csrf_header_to_change_things(
    auth_client: httpx.AsyncClient, world: World
) -> None:
    answer = await auth_client.post("/auth/login", json={"username": "alice", "password": PASSWORDS["alice"]})
    csrf = answer.json()["csrf_token"]
    assert (await auth_client.get(f"/dicomFile/{world.name_a}", params=TAG)).status_code == 200  # the cookie
    assert (await auth_client.delete(f"/dicomFile/{world.name_a}")).status_code == 403
    assert (
        await auth_client.delete(f"/dicomFile/{world.name_a}", headers={"X-CSRF-Token": "x" * 43})
    ).status_code == 403
    assert (await auth_client.delete(f"/dicomFile/{world.name_a}", headers={"X-CSRF-Token": csrf})).status_code == 204
    assert (await auth_client.post("/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
    auth_client.cookies.clear()


async def test_logout_ends_the_token_at_once(auth_client: httpx.AsyncClient, world: World) -> None:
    token = world.tokens["carol"]
    assert (await auth_client.get("/auth/me", headers=bearer(token))).status_code == 200
    assert (await auth_client.post("/auth/logout", headers=bearer(token))).status_code == 204
    assert (await auth_client.get("/auth/me", headers=bearer(token))).status_code == 401


async def test_expired_login_token_and_key(auth_app: FastAPI, auth_client: httpx.AsyncClient, world: World) -> None:
    login_secret = keys.parse(world.tokens["bob"])
    key_secret = keys.parse(world.read_key)
    assert login_secret is not None and key_secret is not None
    await expire(auth_app, login_tokens, login_secret.id)
    await expire(auth_app, api_keys, key_secret.id)
    assert (await auth_client.get("/auth/me", headers=world.as_("bob"))).status_code == 401
    assert (await auth_client.get("/auth/me", headers=bearer(world.read_key))).status_code == 401


async def test_key_scopes_and_revocation(auth_client: httpx.AsyncClient, world: World) -> None:
    created = await auth_client.post(
        "/auth/keys", json={"name": "import", "scope": "write", "expires_in_days": 30}, headers=world.as_("alice")
    )
    assert created.status_code == 201
    new = created.json()
    assert set(new) == {"id", "key", "scope", "expires_at"} and new["key"].startswith(f"lbx_{new['id']}_")
    listed = (await auth_client.get("/auth/keys", headers=world.as_("alice"))).json()["data"]
    assert {row["id"] for row in listed} >= {new["id"]} and new["key"] not in str(listed)
    assert (await auth_client.get("/auth/me", headers=bearer(new["key"]))).status_code == 200
    used = (await auth_client.get("/auth/keys", headers=world.as_("alice"))).json()["data"]
    assert next(row for row in used if row["id"] == new["id"])["last_used_at"] is not None
    too_much = await auth_client.post("/auth/keys", json={"name": "x", "scope": "admin"}, headers=world.as_("alice"))
    assert too_much.status_code == 403
    from_read_key = await auth_client.post(
        "/auth/keys", json={"name": "x", "scope": "write"}, headers=bearer(world.read_key)
    )
    assert from_read_key.status_code == 403
    assert (await auth_client.delete(f"/auth/keys/{new['id']}", headers=world.as_("carol"))).status_code == 404
    assert (await auth_client.delete(f"/auth/keys/{new['id']}", headers=world.as_("alice"))).status_code == 204
    assert (await auth_client.get("/auth/me", headers=bearer(new["key"]))).status_code == 401


async def test_share_expiry_and_revocation(auth_client: httpx.AsyncClient, world: World) -> None:
    short = await auth_client.post(
        "/shares", json={"study_instance_uid": STUDY_A, "expires_in": 1}, headers=world.as_("alice")
    )
    assert short.status_code == 201
    assert set(short.json()) == {"id", "token", "url", "expires_at"}
    listing = await auth_client.get(short.json()["url"])
    assert listing.status_code == 200 and [row["name"] for row in listing.json()["data"]] == [world.name_a]
    await anyio.sleep(1.1)
    assert (await auth_client.get(short.json()["url"])).status_code == 401
    too_long = await auth_client.post(
        "/shares", json={"study_instance_uid": STUDY_A, "expires_in": 31 * 86400}, headers=world.as_("alice")
    )
    assert too_long.status_code == 400
    shares = (await auth_client.get("/shares", headers=world.as_("alice"))).json()["data"]
    parsed = keys.parse(world.share_a)
    assert parsed is not None
    share_a = next(s for s in shares if s["id"] == parsed.id)
    params = {**TAG, "token": world.share_a}
    assert (await auth_client.get(f"/dicomFile/{world.name_a}", params=params)).status_code == 200
    assert (await auth_client.delete(f"/shares/{share_a['id']}", headers=world.as_("carol"))).status_code == 404
    assert (await auth_client.delete(f"/shares/{share_a['id']}", headers=world.as_("alice"))).status_code == 204
    assert (await auth_client.get(f"/dicomFile/{world.name_a}", params=params)).status_code == 401


async def test_share_token_reads_but_manages_nothing(auth_client: httpx.AsyncClient, world: World) -> None:
    share = bearer(world.share_a)
    for path in ("/auth/keys", "/grants", "/shares", "/admin/users", "/metrics"):
        assert (await auth_client.get(path, headers=share)).status_code == 403, path
    render = await auth_client.get(f"/dicomFile/{world.name_a}", params={"png": "", "token": world.share_a})
    assert render.status_code == 200 and render.headers["content-type"] == "image/png"
    download = await auth_client.get(f"/dicomFile/{world.name_a}", params={"download": "", "token": world.share_a})
    assert download.status_code == 200
    # ?token= is for reads only
    post = await auth_client.post("/shares", params={"token": world.share_a}, json={"study_instance_uid": STUDY_A})
    assert post.status_code == 401


async def test_grant_revocation_and_disabled_users(auth_client: httpx.AsyncClient, world: World) -> None:
    url = f"/dicomFile/{world.name_a}"
    assert (await auth_client.get(url, params=TAG, headers=world.as_("bob"))).status_code == 200
    # the lean cached path must not answer bob from memory after the revocation
    assert (await auth_client.get(url, params=TAG, headers=world.as_("admin"))).status_code == 200
    assert (await auth_client.delete(f"/grants/{world.grant_id}", headers=world.as_("bob"))).status_code == 403
    assert (await auth_client.delete(f"/grants/{world.grant_id}", headers=world.as_("alice"))).status_code == 204
    assert (await auth_client.get(url, params=TAG, headers=world.as_("bob"))).status_code == 404
    disabled = await auth_client.patch("/admin/users/alice", json={"disabled": True}, headers=world.as_("admin"))
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert (await auth_client.get("/auth/me", headers=world.as_("alice"))).status_code == 401
    assert (await auth_client.get("/auth/me", headers=bearer(world.read_key))).status_code == 401
    assert (await auth_client.get(url, params={**TAG, "token": world.share_a})).status_code == 401
    assert (await auth_client.get(url, params=TAG, headers=world.as_("admin"))).status_code == 200


async def test_secrets_are_compared_in_constant_time(
    auth_client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys, login tokens and share tokens are found by id and their hashes compared with compare_digest."""
    compared: list[int] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append(len(a))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    for credential in (world.tokens["alice"], world.read_key, world.share_a):
        before = len(compared)
        assert (await auth_client.get("/auth/me", headers=bearer(credential))).status_code == 200
        assert compared[before:] == [64]  # one comparison of two SHA-256 hex digests
        forged = credential[:-4] + ("AAAA" if not credential.endswith("AAAA") else "BBBB")
        assert (await auth_client.get("/auth/me", headers=bearer(forged))).status_code == 401


async def test_the_lean_tag_path_resolves_the_caller(auth_client: httpx.AsyncClient, world: World) -> None:
    url = f"/dicomFile/{world.name_a}"
    for _ in range(2):  # the second answer comes from the administrators' cache
        assert (await auth_client.get(url, params=TAG, headers=world.as_("admin"))).status_code == 200
    assert (await auth_client.get(url, params=TAG)).status_code == 401
    assert (await auth_client.get(url, params=TAG, headers=world.as_("carol"))).status_code == 404
    assert (await auth_client.get(url, params=TAG, headers=bearer(world.share_b))).status_code == 404
    # a wrong password on this path counts as one failed login, not two
    statuses = [
        (await auth_client.get(url, params=TAG, headers=basic("carol", f"wrong-{i}"))).status_code for i in range(5)
    ]
    assert statuses == [401] * 5
    assert (await auth_client.get(url, params=TAG, headers=basic("carol", "wrong-5"))).status_code == 429


async def test_swagger_can_authorize(auth_client: httpx.AsyncClient) -> None:
    """The document names the OAuth2 password flow on /auth/login (Swagger's Authorize button) and Basic."""
    spec = (await auth_client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["BearerScheme"]["flows"]["password"]["tokenUrl"] == "auth/login"
    assert schemes["BasicScheme"] == {
        "type": "http",
        "scheme": "basic",
        "description": schemes["BasicScheme"]["description"],
    }
    operation = spec["paths"]["/dicomFile/{name}"]["get"]
    assert {"BearerScheme": []} in operation["security"] and "401" in operation["responses"]
