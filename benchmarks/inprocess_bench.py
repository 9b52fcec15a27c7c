"""The whole ASGI stack driven in-process (no sockets), base and branch alternated: CPU per request.

    .venv/bin/python benchmarks/inprocess_bench.py --compare /tmp/base --rounds 5 --phases upload,duplicate,tag
    .venv/bin/python benchmarks/inprocess_bench.py --src . --phase upload        # one run, one JSON line

Side-by-side runs against Orthanc cannot resolve a 10-20 % change on a shared 2-core machine; this
can. Each run is a fresh process (``--src`` is the source tree whose ``app`` package it imports:
export the base with ``git archive <commit> app | tar -x -C /tmp/base``) on a fresh folder and SQLite
index, JSON logs on (written to a file), metrics on, audit records on. ``--compare`` runs base and
branch alternately ``--rounds`` times per phase and prints the medians. CPU is the process's
(``time.process_time``: every thread), so work moved to worker threads still counts.

Phases (each checks it measured what it claims, else exits with an error):

* ``upload``: distinct small files (4 pydicom files round-robin, a fresh SOP Instance UID each) at
  ``--concurrency`` (8), every answer 201 with a new name;
* ``duplicate``: the same files uploaded again, every answer the first upload's name, not created;
* ``tag``: ``GET /dicomFile/<name>?tag=00100010`` at concurrency 16, answered from the answer cache;
* ``rendered``: ``GET /dicom-web/studies/.../instances/.../rendered`` repeated (the render cache) at 4;
* ``header``: :func:`app.dicom.header_json.header_json` alone over every file pydicom bundles.

Uploads go through httpx's ASGI transport (its CPU is in the numbers, the same for base and
branch); the GET phases call the ASGI app directly, as a server would. The uvicorn layer (socket
writes, its access line) is in neither.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "SC_rgb.dcm"]
PHASES = ["upload", "duplicate", "tag", "rendered", "header"]


def unique_copy(data: bytes, uid: bytes) -> bytes:
    """``data`` with its SOP Instance UID replaced by a fresh one of the same length."""
    prefix = b"2.25."
    tail = "".join(random.choice("123456789") for _ in range(len(uid) - len(prefix)))
    return data.replace(uid, prefix + tail.encode())


def sources() -> list[tuple[str, bytes, bytes]]:
    import pydicom
    from pydicom.data import get_testdata_file

    found = []
    for name in FILES:
        path = Path(str(get_testdata_file(name)))
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID).encode()
        found.append((name, path.read_bytes(), uid))
    return found


async def run_all(jobs: list[Any], concurrency: int) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await queue.get_nowait()
            # A request that never waits (a cached lookup: send and receive here return at once) would
            # otherwise let one worker run every job in a single event-loop turn: no other task (the audit
            # trail's flush, the per-turn log and metric writes) would run until all were done, the audit
            # queue would fill, and work grouped per turn would look free. A server's requests wait on
            # their sockets; one turn per request is the conservative model.
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Mismatch(Exception):
    """The run did not measure what it claims."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Mismatch(message)


def one_run(phase: str, count: int, concurrency: int) -> dict[str, float]:
    """One phase in this process, against the ``app`` package first on ``sys.path``."""
    if phase == "header":
        return header_run(count)
    import httpx

    from app.config import Settings
    from app.logging import configure_logging
    from app.main import create_app

    folder = Path(tempfile.mkdtemp(prefix="lightbox-inprocess-"))
    log_file = (folder / "log.jsonl").open("w")
    real_stdout, sys.stdout = sys.stdout, log_file  # the log handler writes to sys.stdout as configured
    settings = Settings(storage_dir=folder / "storage", log_format="json")
    configure_logging(settings)
    sys.stdout = real_stdout
    application = create_app(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    files = sources()

    async def upload(client: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
        return await client.post("/upload", files={"file": (name, data)})

    async def scenario() -> dict[str, float]:
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return await phase_run(client, upload)

    async def phase_run(client: httpx.AsyncClient, upload: Any) -> dict[str, float]:
        copies = [(n, unique_copy(data, uid)) for i in range(count + 16) for n, data, uid in [files[i % len(files)]]]
        warm, copies = copies[count:], copies[:count]
        if phase in ("upload", "duplicate"):
            names: list[str] = []
            created: list[bool] = []

            async def store(name: str, data: bytes) -> None:
                response = await upload(client, name, data)
                check(response.status_code in (200, 201), f"upload answered {response.status_code}")
                names.append(response.json()["name"])
                created.append(response.status_code == 201)

            await run_all([store(n, d) for n, d in warm], concurrency)
            if phase == "duplicate":
                await run_all([store(n, d) for n, d in copies], concurrency)  # the originals, not timed
                names.clear()
                created.clear()
                jobs = [store(n, d) for n, d in copies]
                result = await timed(count, lambda: run_all(jobs, concurrency))
                check(not any(created) and len(set(names)) == count, "duplicates were stored again")
                return result
            names.clear()
            created.clear()
            jobs = [store(n, d) for n, d in copies]
            result = await timed(count, lambda: run_all(jobs, concurrency))
            check(all(created) and len(set(names)) == count, "not every upload stored a new file")
            return result
        response = await upload(client, *copies[0])
        check(response.status_code == 201, f"upload answered {response.status_code}")
        stored = response.json()["name"]
        if phase == "tag":
            url = f"/dicomFile/{stored}?tag=00100010"
            concurrency_here = 16
        else:
            meta = (await client.get(f"/dicomFile/{stored}?metadata")).json()[0]
            study, series, sop = (meta[t]["Value"][0] for t in ("0020000D", "0020000E", "00080018"))
            url = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered"
            concurrency_here = 4
        first = await client.get(url)
        check(first.status_code == 200, f"{url} answered {first.status_code}")

        path, _, query = url.partition("?")

        async def get() -> None:
            status, body = await asgi_get(application, path, query.encode())
            check(status == 200 and body == first.content, f"a different answer: {status} {body[:300]!r}")

        await run_all([get() for _ in range(200)], concurrency_here)  # warm
        return await timed(count, lambda: run_all([get() for _ in range(count)], concurrency_here))

    try:
        return loop.run_until_complete(scenario())
    finally:
        log_file.close()
        shutil.rmtree(folder, ignore_errors=True)


async def asgi_get(app: Any, path: str, query: bytes) -> tuple[int, bytes]:
    """One GET straight through the ASGI app, as a server hands it over (httpx's ASGI transport
    costs more CPU per request than the lookup itself, an import attempt included)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def timed(count: int, run: Any) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"count": count, "per_s": round(count / wall, 1), "cpu_us": round(cpu / count * 1e6, 1)}


def header_run(count: int) -> dict[str, float]:
    """header_json alone over every bundled pydicom file that parses (parsing not timed)."""
    from pydicom.data import get_testdata_files

    from app.dicom.header_json import header_json
    from app.dicom.ingest import read_header

    warnings.simplefilter("ignore")  # pydicom's warnings about the odd files
    paths = []
    for path in sorted(get_testdata_files()):
        try:
            header_json(read_header(Path(path)), 1024)
        except Exception:
            continue
        paths.append(Path(path))
    rounds = max(1, count // len(paths))
    elapsed = 0.0
    for _ in range(rounds):
        fresh = [read_header(path) for path in paths]  # parsed again: a conversion caches values on the data set
        cpu = time.process_time()
        for dataset in fresh:
            header_json(dataset, 1024)
        elapsed += time.process_time() - cpu
    calls = rounds * len(paths)
    return {"count": calls, "per_s": round(calls / elapsed, 1), "cpu_us": round(elapsed / calls * 1e6, 1)}


def compare(base: Path, branch: Path, phases: list[str], rounds: int, count: int, concurrency: int) -> None:
    here = Path(__file__).resolve()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for phase in phases:
        for n in range(rounds):
            for label, src in (("base", base), ("branch", branch)):
                command = [sys.executable, str(here), "--src", str(src), "--phase", phase]
                command += ["--count", str(count), "--concurrency", str(concurrency)]
                out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=src).stdout
                result = json.loads(out.strip().splitlines()[-1])
                results.setdefault((phase, label), []).append(result)
                print(f"{phase} round {n + 1} {label}: {result}", file=sys.stderr, flush=True)
    print("| phase | base CPU us/req | branch CPU us/req | change | base req/s | branch req/s |")
    print("|---|---|---|---|---|---|")
    for phase in phases:
        b = results[(phase, "base")]
        a = results[(phase, "branch")]
        bc, ac = statistics.median(r["cpu_us"] for r in b), statistics.median(r["cpu_us"] for r in a)
        br, ar = statistics.median(r["per_s"] for r in b), statistics.median(r["per_s"] for r in a)
        print(f"| {phase} | {bc:.0f} | {ac:.0f} | {(ac - bc) / bc * 100:+.0f} % | {br:.1f} | {ar:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--phase", choices=PHASES)
    parser.add_argument("--compare", type=Path, help="the base source tree to alternate with --src")
    parser.add_argument("--phases", default="upload,duplicate,tag")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=0, help="requests per run (default: 240 uploads, 3000 GETs)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if args.compare is not None:
        phases = args.phases.split(",")
        compare(args.compare.resolve(), args.src.resolve(), phases, args.rounds, args.count, args.concurrency)
        return
    if args.phase is None:
        parser.error("--phase or --compare is required")
    sys.path.insert(0, str(args.src.resolve()))
    os.environ.setdefault("PYTHONHASHSEED", "0")
    count = args.count or {"upload": 240, "duplicate": 240, "header": 1000}.get(args.phase, 3000)
    try:
        print(json.dumps(one_run(args.phase, count, args.concurrency)), flush=True)
    except Mismatch as exc:  # the app's threads may still hold the process: leave at once
        print(f"inprocess_bench: {exc}", file=sys.stderr, flush=True)
        os._exit(2)


if __name__ == "__main__":
    main()
