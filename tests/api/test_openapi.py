"""The OpenAPI document: every operation has a summary, its parameters, and typed, exemplified responses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def has_example(spec: dict[str, Any], media: dict[str, Any]) -> bool:
    if "example" in media or "examples" in media:
        return True
    schema = resolve(spec, media.get("schema", {}))
    if "examples" in schema:
        return True
    return all("examples" in p or "example" in p for p in schema.get("properties", {}).values()) and bool(
        schema.get("properties")
    )


async def test_every_operation_is_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert {(path, method) for path, method, _ in operations} >= {
        ("/upload", "post"),
        ("/dicomFile/{name}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    }
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        for parameter in op.get("parameters", []):
            assert parameter.get("description") or (parameter["in"] == "path" and parameter["name"] in path), where
        successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert successes, where
        for code, response in successes.items():
            if code == "204":
                continue  # No Content: nothing to describe (RFC 9110 15.3.5)
            assert response.get("content"), f"{where} {code}"
            assert any(has_example(spec, media) for media in response["content"].values()), f"{where} {code}"
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                media = response["content"]["application/json"]
                model = media["schema"]["$ref"].rsplit("/", 1)[1]
                assert model in ("ErrorBody", "ReadinessBody"), f"{where} {code}"
                assert has_example(spec, media) and response["description"], f"{where} {code}"
        assert "422" not in op["responses"] or op["responses"]["422"]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("/ErrorBody"), where
    assert "HTTPValidationError" not in spec["components"]["schemas"]


async def test_documented_errors_match_the_service(client: httpx.AsyncClient) -> None:
    """Upload documents the errors it can answer, not the lookup's; the 400 shape is what we really send."""
    spec = (await client.get("/openapi.json")).json()
    upload = spec["paths"]["/upload"]["post"]["responses"]
    lookup = spec["paths"]["/dicomFile/{name}"]["get"]["responses"]
    assert set(upload) == {"200", "201", "202", "400", "408", "409", "413", "503", "507"}
    assert {"200", "304", "400", "404", "415", "422", "503"} == set(lookup)
    bad = await client.get("/dicomFile/x.dcm", params={"png": "", "frame": "0"})
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
