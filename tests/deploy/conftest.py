"""What a real ``lightbox`` exports on ``/metrics`` after some traffic: the names alert rules and the
dashboard may query."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import sample
from tests.e2e.server import run_server

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC_NAME = re.compile(r"\blightbox_[a-z0-9_]+")
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def exported_names(exposition: str) -> set[str]:
    """Every series name the text format announces (``# TYPE`` lines), histograms' series included."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.update(name + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def queried_names(text: str) -> set[str]:
    """The ``lightbox_*`` metric names a PromQL text refers to."""
    return set(METRIC_NAME.findall(text))


@pytest.fixture(scope="session")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``/metrics`` of a real server after uploads (one refused), lookups, a render, a list, a 404 and probes."""
    with run_server(tmp_path_factory.mktemp("scrape")) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        stored = http.post("/upload", files={"file": ("ct.dcm", sample("CT_small.dcm").read_bytes())})
        assert stored.status_code == 201, stored.text
        name = stored.json()["name"]
        assert http.post("/upload", files={"file": ("ct.dcm", sample("CT_small.dcm").read_bytes())}).status_code == 200
        assert http.post("/upload", files={"file": ("notes.txt", b"not dicom")}).status_code == 400
        assert http.get(f"/dicomFile/{name}", params={"tag": "Rows"}).status_code == 200
        assert http.get(f"/dicomFile/{name}", params={"png": ""}).status_code == 200
        assert http.get("/dicomFile", params={"Modality": "CT"}).status_code == 200
        assert (
            http.get("/dicomFile/00000000-0000-4000-8000-000000000000-x.dcm", params={"tag": "Rows"}).status_code == 404
        )
        assert http.get("/readyz").status_code == 200
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        yield metrics.text
