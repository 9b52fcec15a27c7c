"""Security events in the audit trail (issue 10): each recorded once, by the service where it happens,
with the right actor, action and outcome, and never a password, key or token."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.auth.world import ADMIN_PASSWORD, PASSWORDS, STUDY_A, STUDY_B, World, basic, bearer

pytestmark = pytest.mark.anyio

SECURITY = {
    "login",
    "logout",
    "share_create",
    "share_use",
    "share_revoke",
    "grant_create",
    "grant_revoke",
    "user_create",
    "user_update",
    "user_delete",
    "key_create",
    "key_revoke",
}


async def security_records(client: httpx.AsyncClient, world: World) -> list[dict[str, Any]]:
    """The security events so far, oldest first, read as the administrator."""
    response = await client.get("/admin/audit", params={"limit": 1000}, headers=world.as_("admin"))
    assert response.status_code == 200, response.text
    return [r for r in reversed(response.json()["data"]) if r["action"] in SECURITY]


def brief(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["actor"], r["actor_type"], r["action"], r["outcome"]) for r in records]


def secrets_of(world: World) -> list[str]:
    return [ADMIN_PASSWORD, *PASSWORDS.values(), *world.tokens.values(), world.share_a, world.share_b, world.read_key]


async def test_building_the_world_records_each_security_event_once(
    auth_client: httpx.AsyncClient, world: World
) -> None:
    records = await security_records(auth_client, world)
    expected = [("lightbox:startup", "user", "user_create", "success"), ("admin", "user", "login", "success")]
    for user in PASSWORDS:
        expected += [("admin", "user", "user_create", "success"), (user, "user", "login", "success")]
    expected += [
        ("alice", "user", "grant_create", "success"),
        ("alice", "user", "share_create", "success"),
        ("bob", "user", "share_create", "success"),
        ("alice", "user", "key_create", "success"),
    ]
    assert brief(records) == expected
    by_action = {(r["action"], r["actor"]): r for r in reversed(records)}  # the first of each
    assert by_action["user_create", "admin"]["detail"] == {"user": "alice", "role": "user"}
    assert by_action["grant_create", "alice"]["study_instance_uid"] == STUDY_A
    assert by_action["grant_create", "alice"]["detail"] == {
        "grantee": "bob",
        "access": "read",
        "grant_id": world.grant_id,
    }
    assert by_action["share_create", "bob"]["study_instance_uid"] == STUDY_B
    assert by_action["share_create", "bob"]["detail"]["share_id"] == world.share_b.split("_")[1]
    assert by_action["key_create", "alice"]["detail"] == {
        "user": "alice",
        "scope": "read",
        "key_id": world.read_key.split("_")[1],
    }
    assert all(r["client"] == "127.0.0.1" and r["request_id"] for r in records[1:])  # the start-up has no request
    dump = json.dumps(records)
    assert not [secret for secret in secrets_of(world) if secret in dump]


async def test_failed_logins_name_the_typed_user_as_anonymous_and_basic_is_no_login(
    auth_client: httpx.AsyncClient, world: World
) -> None:
    before = len(await security_records(auth_client, world))
    wrong = await auth_client.post("/auth/login", json={"username": "alice", "password": "not-her-password"})
    assert wrong.status_code == 401
    assert (await auth_client.get("/dicomFile", headers=basic("mallory", "guess-guess-1"))).status_code == 401
    assert (await auth_client.get("/dicomFile", headers=basic("bob", PASSWORDS["bob"]))).status_code == 200
    await auth_client.patch("/admin/users/carol", json={"disabled": True}, headers=world.as_("admin"))
    disabled = await auth_client.post("/auth/login", json={"username": "carol", "password": PASSWORDS["carol"]})
    assert disabled.status_code == 401
    pasted = await auth_client.post("/auth/login", json={"username": world.read_key, "password": "x"})
    assert pasted.status_code == 401  # a key typed as the user name is not recorded as the actor
    records = (await security_records(auth_client, world))[before:]
    assert brief(records) == [
        ("alice", "anonymous", "login", "failure"),
        ("mallory", "anonymous", "login", "failure"),
        ("admin", "user", "user_update", "success"),
        ("carol", "anonymous", "login", "failure"),
        ("(not a user name)", "anonymous", "login", "failure"),
    ]  # bob's right Basic password: no login record; his list is recorded as his access
    assert [(r["reason"], r["detail"]) for r in records if r["action"] == "login"] == [
        ("wrong_password", {"via": "login"}),
        ("unknown_user", {"via": "basic"}),
        ("user_disabled", {"via": "login"}),
        ("unknown_user", {"via": "login"}),
    ]
    assert world.read_key not in json.dumps(records)
    assert "not-her-password" not in json.dumps(records) and "guess-guess-1" not in json.dumps(records)
    everything = (await auth_client.get("/admin/audit", params={"actor": "bob"}, headers=world.as_("admin"))).json()
    assert [r["action"] for r in everything["data"]][:1] == ["list"]


async def test_throttled_logins_are_not_recorded(auth_client: httpx.AsyncClient, world: World) -> None:
    before = len(await security_records(auth_client, world))
    statuses = [
        (await auth_client.post("/auth/login", json={"username": "nobody", "password": f"guess-{n}"})).status_code
        for n in range(7)
    ]
    assert statuses == [401] * 5 + [429] * 2
    records = (await security_records(auth_client, world))[before:]
    assert brief(records) == [("nobody", "anonymous", "login", "failure")] * 5


async def test_use_revocation_and_logout_are_recorded_once(auth_client: httpx.AsyncClient, world: World) -> None:
    before = len(await security_records(auth_client, world))
    share_id = world.share_a.split("_")[1]
    used = await auth_client.get(f"/dicomFile/{world.name_a}", params={"tag": "Rows", "token": world.share_a})
    assert used.status_code == 200  # the lean tag path resolves the share: one use all the same
    assert (
        await auth_client.get(f"/dicomFile/{world.name_a}?metadata", headers=bearer(world.share_a))
    ).status_code == 200
    assert (await auth_client.delete(f"/shares/{share_id}", headers=world.as_("alice"))).status_code == 204
    assert (await auth_client.get("/dicomFile", params={"token": world.share_a})).status_code == 401  # unrecorded
    assert (await auth_client.delete(f"/grants/{world.grant_id}", headers=world.as_("alice"))).status_code == 204
    key_id = world.read_key.split("_")[1]
    assert (await auth_client.delete(f"/auth/keys/{key_id}", headers=world.as_("bob"))).status_code == 404  # not his
    assert (await auth_client.delete(f"/auth/keys/{key_id}", headers=world.as_("alice"))).status_code == 204
    refused = await auth_client.post("/admin/users", json={"username": "eve"}, headers=world.as_("carol"))
    assert refused.status_code == 403
    assert (await auth_client.delete("/admin/users/carol", headers=world.as_("admin"))).status_code == 204
    assert (await auth_client.post("/auth/logout", headers=world.as_("bob"))).status_code == 204
    records = (await security_records(auth_client, world))[before:]
    share = f"share:{share_id}"
    assert brief(records) == [
        (share, "share", "share_use", "success"),
        (share, "share", "share_use", "success"),
        ("alice", "user", "share_revoke", "success"),
        ("alice", "user", "grant_revoke", "success"),
        ("bob", "user", "key_revoke", "failure"),
        ("alice", "user", "key_revoke", "success"),
        ("carol", "user", "user_create", "denied"),
        ("admin", "user", "user_delete", "success"),
        ("bob", "user", "logout", "success"),
    ]
    assert {r["study_instance_uid"] for r in records[:4]} == {STUDY_A}
    assert records[0]["detail"] == {"share_id": share_id, "creator": "alice"}
    assert records[3]["detail"] == {"grant_id": world.grant_id, "grantor": "alice", "grantee": "bob", "access": "read"}
    assert (records[4]["reason"], records[6]["reason"]) == ("not_found", "forbidden")
    assert records[-1]["detail"] == {"session_ended": True}
    counted = Counter(r["request_id"] for r in records)
    assert max(counted.values()) == 1  # one security event per request
    dump = json.dumps(records)
    assert not [secret for secret in secrets_of(world) if secret in dump]


async def test_a_user_name_shaped_like_a_key_is_refused_and_the_refusal_recorded(
    auth_client: httpx.AsyncClient, world: World
) -> None:
    before = len(await security_records(auth_client, world))
    for name in ("lbx_0123456789abcdef_x", "LBT_token", "share:1"):
        refused = await auth_client.post("/admin/users", json={"username": name}, headers=world.as_("admin"))
        assert refused.status_code == 400 and "lbx_" in refused.json()["error"], refused.text
    records = (await security_records(auth_client, world))[before:]
    assert [(r["action"], r["outcome"], r["reason"]) for r in records] == [
        ("user_create", "failure", "invalid_request")
    ] * 3
