"""Bounded soak against a running Lightbox on loopback: mixed uploads, tag lookups, renders and lists.

    python benchmarks/soak.py --url http://127.0.0.1:8080 --seconds 60 --concurrency 32 [--pid PID]

Prints one JSON object: requests and errors per kind, latency percentiles, and (with --pid)
the server's resident memory at the start, after the warm-up and at the end; exits 1 when a kind
of request was never made (the mix was not what it claims).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

SEEDS = ["CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm"]
LOOPBACK = ("127.", "localhost", "[::1]")


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def record(self, kind: str, seconds: float, problem: str | None) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        if problem:
            self.errors.setdefault(kind, []).append(problem)

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for kind, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            out[kind] = {
                "requests": len(values),
                "errors": len(self.errors.get(kind, [])),
                "p50_ms": round(statistics.median(ordered) * 1e3, 1),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3, 1),
                "first_errors": self.errors.get(kind, [])[:3],
            }
        return out


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn workers, decode-sandbox processes)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            queue.extend(int(child) for child in children)
    return found


def rss_by_process(pid: int | None) -> dict[int, float]:
    """Resident memory of each process of the server's tree, in MiB (``{}`` when no pid is known)."""
    if pid is None:
        return {}
    found: dict[int, float] = {}
    for member in _process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except FileNotFoundError:
            continue
        kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        found[member] = round(kib / 1024, 1)
    return found


def grown_mib(start: dict[int, float], end: dict[int, float]) -> float:
    """How much the processes that lived through a run grew. The decode sandbox starts its processes on
    first need, so a process that appears mid-run is a bounded pool filling up, not a leak; the test counts
    processes separately."""
    return round(sum(end[pid] - start[pid] for pid in start.keys() & end.keys()), 1)


def fresh_copy(seed: bytes) -> bytes:
    """The seed with a new SOP Instance UID, so that every upload is a new instance."""
    from io import BytesIO

    ds = dcmread(BytesIO(seed))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


async def soak(url: str, seconds: float, concurrency: int, pid: int | None) -> dict[str, object]:
    seeds = [Path(str(get_testdata_file(name))).read_bytes() for name in SEEDS]
    tally = Tally()
    names: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        for seed in seeds:
            response = await client.post("/upload", files={"file": ("seed.dcm", fresh_copy(seed))})
            response.raise_for_status()
            names.append(response.json()["name"])
        memory_start = rss_by_process(pid)
        deadline = time.monotonic() + seconds
        rng = random.Random(7)

        async def one(kind: str) -> None:
            started = time.perf_counter()
            problem = None
            try:
                if kind == "upload":
                    body = fresh_copy(rng.choice(seeds))
                    response = await client.post("/upload", files={"file": ("soak.dcm", body)})
                    if response.status_code == 201:
                        names.append(response.json()["name"])
                elif kind == "tag":
                    response = await client.get(f"/dicomFile/{rng.choice(names)}", params={"tag": "(0008,0018)"})
                elif kind == "render":
                    size = rng.choice(["", "&size=128"])
                    response = await client.get(f"/dicomFile/{rng.choice(names)}?png{size}")
                else:
                    response = await client.get("/dicomFile", params={"limit": 20})
                if response.status_code >= 400:
                    problem = f"{response.status_code} {response.text[:120]}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            tally.record(kind, time.perf_counter() - started, problem)

        async def worker() -> None:
            while time.monotonic() < deadline:
                await one(rng.choices(["upload", "tag", "render", "list"], weights=[1, 6, 2, 1])[0])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    memory_end = rss_by_process(pid)
    return {
        "seconds": seconds,
        "concurrency": concurrency,
        "rss_mib_start": round(sum(memory_start.values()), 1) if pid is not None else None,
        "rss_mib_end": round(sum(memory_end.values()), 1) if pid is not None else None,
        "processes_start": len(memory_start),
        "processes_end": len(memory_end),
        "rss_mib_grown_by_survivors": grown_mib(memory_start, memory_end),
        "kinds": tally.summary(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pid", type=int)
    args = parser.parse_args()
    host = httpx.URL(args.url).host
    if not host.startswith(LOOPBACK[:2]) and host not in ("::1",):
        parser.error("the soak only targets loopback addresses")
    result = asyncio.run(soak(args.url, args.seconds, args.concurrency, args.pid))
    print(json.dumps(result, indent=2))
    kinds = result["kinds"]
    assert isinstance(kinds, dict)
    idle = sorted({"upload", "tag", "render", "list"} - {kind for kind, tally in kinds.items() if tally["requests"]})
    if idle:  # a soak that never exercised a kind says nothing about it
        print(f"soak: no {', '.join(idle)} request was made: not the mix claimed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
