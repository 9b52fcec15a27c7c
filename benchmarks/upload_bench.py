"""Upload throughput against a running server: files/s at a given concurrency.

    python -m benchmarks.upload_bench --url http://127.0.0.1:8400 --file IM000001 [--concurrency 8] [--count 200]

Every upload is a distinct instance: the file's SOP Instance UID is replaced by a fresh one of the
same length (so the bytes and size stay otherwise identical). Several ``--file`` arguments are
uploaded round-robin. Prints files/s and p50/p90 latency; stops with an error unless every upload
stored a new file (201, a distinct name).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path

import httpx
import pydicom


def unique_copies(path: Path, count: int) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    uid = str(pydicom.dcmread(path, stop_before_pixels=True, force=True).SOPInstanceUID).encode()
    prefix = b"2.25."
    copies = []
    for _ in range(count):
        tail = "".join(random.choice("123456789") for _ in range(len(uid) - len(prefix)))
        copies.append((path.name, data.replace(uid, prefix + tail.encode())))
    return copies


async def upload_all(url: str, files: list[tuple[str, bytes]], concurrency: int) -> tuple[float, list[float]]:
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in files:
        queue.put_nowait(item)
    latencies: list[float] = []
    names: set[str] = set()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                name, data = queue.get_nowait()
                start = time.perf_counter()
                response = await client.post("/upload", files={"file": (name, data)})
                if response.status_code != 201:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                latencies.append((time.perf_counter() - start) * 1e3)
                names.add(response.json()["name"])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    if len(names) != len(files) or len(latencies) != len(files):
        raise SystemExit(f"{len(names)} new files stored for {len(files)} uploads: not the throughput claimed")
    return len(files) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8400")
    parser.add_argument("--file", type=Path, action="append", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    per_file = -(-args.count // len(args.file))
    pools = [unique_copies(path, per_file) for path in args.file]
    files = [item for group in zip(*pools, strict=True) for item in group][: args.count]
    rate, latencies = asyncio.run(upload_all(args.url, files, args.concurrency))
    q = statistics.quantiles(latencies, n=10)
    print(f"{rate:.1f} files/s  p50 {statistics.median(latencies):.1f} ms  p90 {q[8]:.1f} ms  (n={len(files)})")


if __name__ == "__main__":
    main()
