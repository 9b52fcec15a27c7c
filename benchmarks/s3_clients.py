"""Which S3 client: boto3 in worker threads (what the service uses) against obstore (Rust, asyncio).

Puts and whole-object GETs of a small (64 KiB) and a 3.6 MB object, 8 at a time, against a throwaway
SeaweedFS on loopback (tests/seaweedfs.py). obstore is optional: ``pip install --target DIR obstore``
and put DIR on PYTHONPATH. aiobotocore is not measured: its releases pin botocore to a narrower
range than the boto3 the service locks (it would downgrade boto3). Run:
``python -m benchmarks.s3_clients [--operations 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.config import S3Location
from app.storage.s3 import S3BlobStore
from tests import seaweedfs

SIZES = {"64 KiB": 64 * 1024, "3.6 MB": 3_600_000}
CONCURRENCY = 8


def boto3_run(client: Any, bucket: str, data: bytes, operations: int) -> tuple[float, float]:
    keys = [f"boto3/{uuid.uuid4()}.dcm" for _ in range(operations)]

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")

    def get(key: str) -> None:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        for _ in body.iter_chunks(1 << 20):
            pass

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        started = time.perf_counter()
        list(pool.map(put, keys))
        put_rate = operations / (time.perf_counter() - started)
        started = time.perf_counter()
        list(pool.map(get, keys))
        get_rate = operations / (time.perf_counter() - started)
    return put_rate, get_rate


async def obstore_run(endpoint: str, bucket: str, data: bytes, operations: int) -> tuple[float, float]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id=seaweedfs.TEST_CREDENTIALS["aws_access_key_id"],
        secret_access_key=seaweedfs.TEST_CREDENTIALS["aws_secret_access_key"],
        client_options={"allow_http": True},
    )
    keys = [f"obstore/{uuid.uuid4()}.dcm" for _ in range(operations)]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def put(key: str) -> None:
        async with limit:
            await obstore.put_async(store, key, data, mode="create")

    async def get(key: str) -> None:
        async with limit:
            answer = await obstore.get_async(store, key)
            async for _ in answer.stream(1 << 20):
                pass

    started = time.perf_counter()
    await asyncio.gather(*(put(key) for key in keys))
    put_rate = operations / (time.perf_counter() - started)
    started = time.perf_counter()
    await asyncio.gather(*(get(key) for key in keys))
    get_rate = operations / (time.perf_counter() - started)
    return put_rate, get_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=200)
    args = parser.parse_args()
    try:
        import obstore  # noqa: F401

        have_obstore = True
    except ImportError:
        have_obstore = False
    with seaweedfs.throwaway_seaweedfs() as endpoint:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        seaweedfs.client(endpoint).create_bucket(Bucket=bucket)
        os.environ.update(seaweedfs.aws_environment())
        # the service's own client: its configuration (no extra CRC32 of every body) matters
        client = S3BlobStore.connect(S3Location(bucket, "bench"), endpoint, Path(tempfile.gettempdir())).client
        boto3_run(client, bucket, os.urandom(SIZES["64 KiB"]), 40)  # warm-up: the store grows its volumes first
        print(
            f"{'client':<10} {'size':<8} {'PUT/s':>8} {'GET/s':>8}   ({args.operations} ops, {CONCURRENCY} at a time)"
        )
        for label, size in SIZES.items():
            data = os.urandom(size)
            put_rate, get_rate = boto3_run(client, bucket, data, args.operations)
            print(f"{'boto3':<10} {label:<8} {put_rate:8.0f} {get_rate:8.0f}")
            if have_obstore:
                put_rate, get_rate = asyncio.run(obstore_run(endpoint, bucket, data, args.operations))
                print(f"{'obstore':<10} {label:<8} {put_rate:8.0f} {get_rate:8.0f}")


if __name__ == "__main__":
    main()
