"""deploy/compose.yaml and deploy/nginx.conf agree with each other and with Lightbox's settings.

There is no Docker engine here: the compose file is parsed (PyYAML) and checked for what would break
a real ``docker compose up``: replicas that differ, an nginx upstream naming a service or port that
does not exist, a database or S3 endpoint naming another service, an unknown ``LIGHTBOX_*`` setting,
an upload limit nginx would cut short, request ids not passed through, retries of non-idempotent
requests. The same nginx.conf runs for real in tests/e2e/test_replicas.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


#: What an operator exports before ``docker compose up`` (the file refuses to start without them).
OPERATOR_ENV = {"POSTGRES_PASSWORD": "pg-secret", "S3_SECRET_KEY": "s3-secret", "LIGHTBOX_ADMIN_PASSWORD": "admin-pw"}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``; a required one missing fails."""

    def value(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in env:
            return env[name]
        assert operator != ":?", f"compose.yaml requires {name}: {rest}"
        return rest

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}", value, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(interpolate((DEPLOY / "compose.yaml").read_text(), OPERATOR_ENV))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def nginx() -> str:
    return re.sub(r"#[^\n]*", "", (DEPLOY / "nginx.conf").read_text())  # comments out of the way


def replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The long-running Lightbox services (the ``lightbox`` command serving)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image", "").startswith("lightbox") and "command" not in service
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def directive(conf: str, name: str) -> list[str]:
    return [m.strip() for m in re.findall(rf"(?m)^\s*{name}\s+([^;]+);", conf)]


def size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmgKMG]?)", text.strip()).groups()  # type: ignore[union-attr]
    return int(number) * SIZE_UNITS[unit.lower()]


def test_the_stack_has_a_database_an_object_store_replicas_and_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["seaweedfs"]["image"].startswith("chrislusf/seaweedfs")
    assert "-s3" in services["seaweedfs"]["command"]
    assert services["nginx"]["image"].startswith("nginx:")
    assert len(replicas(compose)) >= 2
    assert services["migrate"]["command"] == ["lightbox", "migrate"]
    for name, service in replicas(compose).items():  # the schema and the bucket exist before any replica serves
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert service["depends_on"]["bucket"]["condition"] == "service_completed_successfully", name
        assert "/readyz" in " ".join(service["healthcheck"]["test"]), name


def test_replicas_are_identical_and_every_setting_is_known(compose: dict[str, Any]) -> None:
    envs = [environment(service) for service in replicas(compose).values()]
    envs.append(environment(compose["services"]["migrate"]))
    assert all(env == envs[0] for env in envs), "replicas (and migrate) must run with the same settings"
    known = {f"LIGHTBOX_{name.upper()}" for name in Settings.model_fields}
    unknown = {key for key in envs[0] if key.startswith("LIGHTBOX_")} - known
    assert not unknown, f"not Lightbox settings: {sorted(unknown)}"
    env = envs[0]
    assert env["LIGHTBOX_AUTH_REQUIRED"] == "true", "replicas listen beyond loopback: auth is required"
    assert env["LIGHTBOX_STORAGE_URL"].startswith("s3://")
    fields = Settings.model_fields
    for key in ("LIGHTBOX_SWEEP_INTERVAL_SECONDS", "LIGHTBOX_SWEEP_MIN_AGE_SECONDS"):
        assert float(env[key]) == fields[key.removeprefix("LIGHTBOX_").lower()].default


def test_database_and_object_store_urls_name_their_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = environment(next(iter(replicas(compose).values())))
    database = urlsplit(env["LIGHTBOX_DATABASE_URL"])
    postgres = environment(services["postgres"])
    assert database.scheme == "postgresql" and database.hostname == "postgres" and database.port == 5432
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == "/" + postgres["POSTGRES_DB"]
    endpoint = urlsplit(env["LIGHTBOX_S3_ENDPOINT_URL"])
    assert endpoint.hostname == "seaweedfs"
    assert f"-s3.port={endpoint.port}" in services["seaweedfs"]["command"]
    bucket = urlsplit(env["LIGHTBOX_STORAGE_URL"]).hostname
    assert f"--bucket {bucket}" in " ".join(services["bucket"]["command"])
    store = environment(services["seaweedfs"])
    assert env["AWS_ACCESS_KEY_ID"] == store["AWS_ACCESS_KEY_ID"]
    assert env["AWS_SECRET_ACCESS_KEY"] == store["AWS_SECRET_ACCESS_KEY"]


def test_nginx_upstream_is_every_replica_with_passive_health_checks(compose: dict[str, Any], nginx: str) -> None:
    upstream = re.search(r"upstream\s+lightbox\s*\{([^}]*)\}", nginx)
    assert upstream is not None
    servers = directive(upstream.group(1), "server")
    expected = {f"{name}:{environment(service)['LIGHTBOX_PORT']}" for name, service in replicas(compose).items()}
    assert {line.split()[0] for line in servers} == expected
    for line in servers:
        assert re.search(r"\bmax_fails=[1-9]\d*\b", line) and re.search(r"\bfail_timeout=\d+s\b", line), line
    assert "proxy_pass http://lightbox;" in nginx


def test_nginx_listens_where_compose_publishes_it(compose: dict[str, Any], nginx: str) -> None:
    nginx_service = compose["services"]["nginx"]
    published = {str(port).rsplit(":", 1)[-1] for port in nginx_service["ports"]}
    assert set(directive(nginx, "listen")) == published
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx_service["volumes"]
    assert set(nginx_service["depends_on"]) == set(replicas(compose))


def test_nginx_passes_uploads_whole_and_request_ids_through(compose: dict[str, Any], nginx: str) -> None:
    env = environment(next(iter(replicas(compose).values())))
    (body_limit,) = directive(nginx, "client_max_body_size")
    assert size(body_limit) > int(env["LIGHTBOX_MAX_UPLOAD_BYTES"]), "nginx would refuse uploads Lightbox accepts"
    assert directive(nginx, "proxy_request_buffering") == ["off"], "uploads stream to the replica's staging"
    assert "X-Request-ID $lightbox_request_id" in directive(nginx, "proxy_set_header")
    assert re.search(r"map\s+\$http_x_request_id\s+\$lightbox_request_id", nginx)
    for timeout in ("proxy_read_timeout", "proxy_send_timeout", "client_body_timeout"):
        (value,) = directive(nginx, timeout)
        assert int(value.removesuffix("s")) >= 60, timeout


def test_nginx_retries_idempotent_requests_only(nginx: str) -> None:
    (retry,) = directive(nginx, "proxy_next_upstream")
    conditions = set(retry.split())
    assert "non_idempotent" not in conditions, "a POST must never reach two replicas"
    assert {"error", "timeout", "http_502"} <= conditions
    assert int(directive(nginx, "proxy_next_upstream_tries")[0]) >= 2
