"""Load benchmark against a running server: first-time and repeated renders over real HTTP.

    python -m benchmarks.load_bench --url http://127.0.0.1:8100 --file IM000001 [--concurrency 4] [--count 16]

Every response must be an image and every phase must complete all its requests, or the run stops
with an error instead of printing figures. Uploads ``--count`` copies of the file (untimed; each
with its own SOP Instance UID, since identical bytes are stored once), then renders each copy once at the given
concurrency ("first"), then renders one copy ``--count`` times ("repeat", served by the render
cache), for each query in ``--queries``. Prints requests/s and p50/p90 latency per phase.
The side-by-side comparison with Orthanc is ``../shared/bench/compare.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import httpx

from benchmarks.upload_bench import unique_copies


class NotMeasured(SystemExit):
    """The run measured something other than what it reports: its figures must not be used."""


async def run(client: httpx.AsyncClient, urls: list[str], concurrency: int) -> tuple[float, list[float]]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            url = queue.get_nowait()
            start = time.perf_counter()
            response = await client.get(url)
            response.raise_for_status()
            if not response.headers["content-type"].startswith("image/") or not response.content:
                raise NotMeasured(f"{url} answered {response.headers['content-type']}, not an image")
            latencies.append((time.perf_counter() - start) * 1e3)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if len(latencies) != len(urls):
        raise NotMeasured(f"{len(latencies)} renders measured, {len(urls)} claimed")
    return len(urls) / elapsed, latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8100")
    parser.add_argument("--file", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--queries", default="png,jpeg,png&size=256")
    args = parser.parse_args()
    async with httpx.AsyncClient(base_url=args.url, timeout=120) as client:
        for query in args.queries.split(","):
            names = []
            for file_name, body in unique_copies(Path(args.file), args.count):
                response = await client.post("/upload", files={"file": (file_name, body)})
                response.raise_for_status()
                names.append(response.json()["name"])
            if len(set(names)) != args.count:  # a duplicate would make a "first" render a cached one
                raise NotMeasured(f"{len(set(names))} distinct files stored, {args.count} needed: use a fresh server")
            for phase, urls in (
                ("first", [f"/dicomFile/{n}?{query}" for n in names]),
                ("repeat", [f"/dicomFile/{names[0]}?{query}"] * args.count),
            ):
                rate, latencies = await run(client, urls, args.concurrency)
                p50 = statistics.median(latencies)
                p90 = statistics.quantiles(latencies, n=10)[-1] if len(latencies) > 1 else p50
                line = f"{query:<16}{phase:<8}c={args.concurrency}  {rate:8.1f} req/s"
                print(f"{line}  p50 {p50:7.1f} ms  p90 {p90:7.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
