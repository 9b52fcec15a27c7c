"""Which S3 client: obstore (what the service uses) against boto3, both as the service calls them.

Blocking calls from a pool of 8 worker threads (the service runs every store call in a worker
thread): puts of a staged file (``If-None-Match: *``, with its SHA-256) and whole-object GETs
streamed into a local file (the blob cache's fetch), of a small (64 KiB) and a 3.6 MB object,
against a throwaway SeaweedFS on loopback (tests/seaweedfs.py). obstore runs through
:class:`app.storage.s3.S3BlobStore` itself; boto3 (a test dependency, skipped when absent) runs the
calls the service made before obstore, with the configuration it had.

Does a client release the GIL while it waits and copies bytes? obstore is also run with one thread
(8 threads must be faster), and a pure-Python thread counts while each phase runs: its rate as a
share of its rate alone ("py %") falls towards 0 when the client holds the GIL. Run:
``python -m benchmarks.s3_clients [--operations 200]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.storage.local import StagedFile
from app.storage.names import new_stored_name, object_key
from app.storage.s3 import S3BlobStore
from tests import seaweedfs

SIZES = {"64 KiB": 64 * 1024, "3.6 MB": 3_600_000}
CONCURRENCY = 8


class PythonProgress:
    """A pure-Python counting thread: how much interpreter time the other threads leave it."""

    def __init__(self) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.count += 1

    @classmethod
    @contextmanager
    def measuring(cls) -> Iterator[PythonProgress]:
        progress = cls()
        progress._thread.start()
        try:
            yield progress
        finally:
            progress._stop.set()
            progress._thread.join()


def rate_alone(seconds: float = 0.5) -> float:
    with PythonProgress.measuring() as progress:
        time.sleep(seconds)
    return progress.count / seconds


def timed(call: Callable[[Any], object], items: list[Any], threads: int) -> tuple[float, float]:
    """Operations per second over ``items``, and the Python thread's rate meanwhile as a share of its
    rate alone just before (the machine's other load changes; the share is only compared within a run)."""
    alone = rate_alone()
    with PythonProgress.measuring() as progress, ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        list(pool.map(call, items))
        elapsed = time.perf_counter() - started
    return len(items) / elapsed, progress.count / elapsed / alone


def staged_files(store: S3BlobStore, data: bytes, count: int) -> list[StagedFile]:
    """Files staged as an upload leaves them (written, flushed; the benchmark skips the fsync)."""
    files = []
    for _ in range(count):
        staged = store.stage()
        staged.write(data)
        staged.flush_buffer()
        files.append(staged)
    return files


def obstore_run(store: S3BlobStore, data: bytes, operations: int, threads: int) -> tuple[float, ...]:
    """The service's own calls: :meth:`S3BlobStore.put` of staged files, :meth:`S3BlobStore.fetch_to`."""
    uploads = [(staged, object_key(new_stored_name("x.dcm"))) for staged in staged_files(store, data, operations)]
    put_rate, put_python = timed(lambda item: store.put(*item), uploads, threads)
    fetched = Path(tempfile.mkdtemp(prefix="s3-bench-"))
    get_rate, get_python = timed(lambda item: store.fetch_to(item[1], fetched / item[1]), uploads, threads)
    check_fetched(fetched, data, operations)
    return put_rate, put_python, get_rate, get_python


def check_fetched(folder: Path, data: bytes, operations: int) -> None:
    """Every object put came back whole (else no figures), then the fetched copies go."""
    copies = sorted(folder.iterdir())
    whole = len(copies) == operations and all(path.stat().st_size == len(data) for path in copies)
    if not whole or copies[0].read_bytes() != data:
        raise SystemExit("an object did not come back as it was put: no figures")
    for path in copies:
        path.unlink()
    folder.rmdir()


def boto3_client(endpoint: str) -> Any:
    """boto3 as the service configured it before obstore (path style, 2 attempts, no extra CRC32)."""
    import boto3
    import botocore.config

    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=3,
        read_timeout=30,
        max_pool_connections=64,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    credentials = seaweedfs.TEST_CREDENTIALS
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=config, **credentials)


def boto3_run(client: Any, store: S3BlobStore, bucket: str, data: bytes, operations: int) -> tuple[float, ...]:
    """The calls the service made with boto3: put_object streamed from the staged file, get_object to a file."""
    staged = staged_files(store, data, operations)
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
    uploads = [(file, f"boto3/{uuid.uuid4()}.dcm") for file in staged]

    def put(item: tuple[StagedFile, str]) -> None:
        with item[0].path.open("rb") as body:
            client.put_object(
                Bucket=bucket, Key=item[1], Body=body, ContentLength=len(data), IfNoneMatch="*", ChecksumSHA256=checksum
            )

    fetched = Path(tempfile.mkdtemp(prefix="s3-bench-"))

    def get(item: tuple[StagedFile, str]) -> None:
        answer = client.get_object(Bucket=bucket, Key=item[1])
        with (fetched / item[1].replace("/", "-")).open("wb") as writer:
            for chunk in answer["Body"].iter_chunks(1 << 20):
                writer.write(chunk)

    put_rate, put_python = timed(put, uploads, CONCURRENCY)
    get_rate, get_python = timed(get, uploads, CONCURRENCY)
    for file in staged:
        file.discard()
    check_fetched(fetched, data, operations)
    return put_rate, put_python, get_rate, get_python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=200)
    args = parser.parse_args()
    try:
        import boto3  # noqa: F401

        have_boto3 = True
    except ImportError:
        have_boto3 = False
    with seaweedfs.throwaway_seaweedfs() as endpoint, tempfile.TemporaryDirectory() as staging:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        seaweedfs.client(endpoint).create_bucket(Bucket=bucket)
        store = seaweedfs.blob_store(endpoint, bucket, "bench", Path(staging))
        obstore_run(store, os.urandom(SIZES["64 KiB"]), 40, CONCURRENCY)  # warm-up: the store grows its volumes
        print(f"{'client':<18} {'size':<8} {'PUT/s':>7} {'py %':>5} {'GET/s':>7} {'py %':>5}   ({args.operations} ops)")
        for label, size in SIZES.items():
            data = os.urandom(size)
            runs: list[tuple[str, tuple[float, ...]]] = []
            if have_boto3:
                client = boto3_client(endpoint)
                runs.append(("boto3, 8 threads", boto3_run(client, store, bucket, data, args.operations)))
            runs.append(("obstore, 8 threads", obstore_run(store, data, args.operations, CONCURRENCY)))
            runs.append(("obstore, 1 thread", obstore_run(store, data, args.operations // 4, 1)))
            for name, (put_rate, put_python, get_rate, get_python) in runs:
                print(
                    f"{name:<18} {label:<8} {put_rate:7.0f} {100 * put_python:5.0f}"
                    f" {get_rate:7.0f} {100 * get_python:5.0f}"
                )


if __name__ == "__main__":
    main()
