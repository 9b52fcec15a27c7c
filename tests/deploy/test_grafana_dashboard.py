"""deploy/grafana/lightbox.json: a well-formed dashboard whose every query reads metrics the service exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY, exported_names, queried_names

DASHBOARD = DEPLOY / "grafana" / "lightbox.json"


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL text: panel targets and template variable queries."""
    found = [t["expr"] for p in panels(dashboard["panels"]) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["query"]["query"])
    return found


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_every_queried_metric_is_exported_by_the_service(dashboard: dict[str, Any], scraped: str) -> None:
    exported = exported_names(scraped)
    queried = set().union(*(queried_names(expr) for expr in expressions(dashboard)))
    assert len(queried) >= 15
    assert queried - exported == set()


def test_it_covers_traffic_errors_latency_uploads_renders_caches_and_index_size(dashboard: dict[str, Any]) -> None:
    text = " ".join(expressions(dashboard))
    for metric in (
        "lightbox_http_requests_total",
        "lightbox_request_errors_total",
        "lightbox_http_request_duration_seconds_bucket",
        "lightbox_uploads_total",
        "lightbox_upload_rejections_total",
        "lightbox_renders_total",
        "lightbox_render_duration_seconds_bucket",
        "lightbox_cache_hits_total",
        "lightbox_index_entries",
        "lightbox_storage_free_bytes",
        "lightbox_decode_sandbox_restarts_total",
    ):
        assert metric in text, metric


def test_panels_are_well_formed_and_use_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "lightbox"
    ids = [p["id"] for p in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "instance"}
    for panel in panels(dashboard["panels"]):
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], target["expr"]  # every panel follows the variables


def sample_value(exposition: str, series: str) -> float:
    (value,) = [line.rsplit(" ", 1)[1] for line in exposition.splitlines() if line.startswith(series + " ")]
    return float(value)


def test_the_values_behind_the_storage_and_error_panels(scraped: str) -> None:
    free = sample_value(scraped, "lightbox_storage_free_bytes")
    assert 0 < free <= sample_value(scraped, "lightbox_storage_capacity_bytes")
    assert sample_value(scraped, 'lightbox_request_errors_total{kind="invalid_dicom"}') == 1
    assert sample_value(scraped, 'lightbox_request_errors_total{kind="file_not_found"}') == 1
    assert sample_value(scraped, 'lightbox_index_entries{level="instances"}') == 1
