"""Schemathesis against the service's own OpenAPI schema, on a real server: no generated request gets a 5xx,
and every answer conforms to what the schema documents (status codes, content types, bodies).

Driven through schemathesis' Hypothesis strategies (its pytest plugin does not support pytest 9 yet).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import sample
from tests.e2e.server import RunningServer, run_server

pytestmark = pytest.mark.slow


@schemathesis.serializer("multipart/related")
def _related(_context: Any, value: Any) -> bytes:
    """STOW-RS bodies (multipart/related): whatever was generated, as bytes; the answer must be a 4xx."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("schema")) as running:
        # one stored file so that generated requests can meet a real one
        httpx.post(running.url + "/upload", files={"file": ("ct.dcm", sample("CT_small.dcm").read_bytes())})
        yield running


def operations(server: RunningServer) -> list[Any]:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]


def test_every_operation_conforms(server: RunningServer) -> None:
    found = operations(server)
    assert len(found) >= 3
    for operation in found:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            # A schema cannot say "must be DICOM": valid-looking binaries that are not DICOM rightly get 400.
            case.call_and_validate(base_url=server.url, excluded_checks=[positive_data_acceptance])

        check()


@given(name=st.text(min_size=1, max_size=80), tag=st.text(max_size=40))
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_arbitrary_names_and_tags_never_5xx(server: RunningServer, name: str, tag: str) -> None:
    from urllib.parse import quote

    response = httpx.get(f"{server.url}/dicomFile/{quote(name, safe='')}", params={"tag": tag}, timeout=10)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert "error" in response.json()
