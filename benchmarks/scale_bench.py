"""Scale-out benchmark (issue 12): the same load on three topologies, in one run, with ratios.

    python -m benchmarks.scale_bench [--large-file IM000001] [--small-count 160] [--large-count 40] [--renders 160]

1. one replica on SQLite + the storage folder (the laptop default);
2. one replica on PostgreSQL + S3 (SeaweedFS);
3. two replicas on PostgreSQL + S3 behind nginx (``deploy/nginx.conf``).

Each: upload throughput at concurrency 8 of small files (pydicom's CT_small.dcm, 39 KB) and of 3.6 MB
files (a generated 1537 x 1184 16-bit DX image unless ``--large-file`` names one), every upload a
distinct instance (``upload_bench.unique_copies``); then repeated renders (``?png``) of one file at
concurrency 8. On PostgreSQL, the statements the server executed per upload (pg_stat_statements,
BEGIN/COMMIT included: each is a round trip) and the transactions per upload (pg_stat_database).
Everything runs on loopback: a throwaway PostgreSQL with fsync on (``tests/postgres.py``), a
throwaway SeaweedFS (``tests/seaweedfs.py``), Debian nginx (``tests/nginx.py``). Each replica runs
one worker process. Stops with an error (no figures) unless every upload stored a new file and
every render answered an image.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from benchmarks.load_bench import run as run_renders
from benchmarks.upload_bench import unique_copies, upload_all
from tests import nginx, postgres, seaweedfs
from tests.conftest import sample
from tests.e2e.server import run_server

CONCURRENCY = 8
PG_OPTIONS = "-c shared_preload_libraries=pg_stat_statements -c fsync=on -c synchronous_commit=on"


def large_dicom(folder: Path) -> Path:
    """A 3.6 MB DX-sized instance (1537 x 1184, 16-bit), written once into ``folder``."""
    dataset = pydicom.dcmread(sample("CT_small.dcm"))
    dataset.Rows, dataset.Columns = 1537, 1184
    pixels = np.random.default_rng(7).integers(0, 4000, size=(1537, 1184), dtype=np.uint16)
    dataset.PixelData = pixels.astype(np.int16).tobytes()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    path = folder / "large.dcm"
    path.write_bytes(out.getvalue())
    return path


@dataclass
class Result:
    name: str
    rates: dict[str, float] = field(default_factory=dict)  # files/s or renders/s
    p50: dict[str, float] = field(default_factory=dict)
    #: CPU ms per request of each part: "lightbox" (the replicas), "store" (SeaweedFS), "database" (PostgreSQL)
    cpu_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    statements_per_upload: float | None = None
    transactions_per_upload: float | None = None


class Counters:
    """Statements (pg_stat_statements) and transactions (pg_stat_database) of one database so far."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _read(self) -> tuple[int, int]:
        connection = await asyncpg.connect(self.url)
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            statements = await connection.fetchval(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            transactions = await connection.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            )
        finally:
            await connection.close()
        return int(statements), int(transactions)

    def read(self) -> tuple[int, int]:
        time.sleep(0.7)  # pg_stat_database is flushed by backends at most once a second
        return asyncio.run(self._read())


Files = list[tuple[str, bytes]]


class CpuMeter:
    """CPU seconds used so far by the replicas (their process sessions: workers and decode sandboxes),
    SeaweedFS (``weed``) and PostgreSQL (``postgres``), from /proc: what each part costs per request,
    apart from the others that share these cores."""

    def __init__(self, replica_sessions: list[int]) -> None:
        self.replica_sessions = set(replica_sessions)

    def read(self) -> dict[str, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        used = {"lightbox": 0, "store": 0, "database": 0}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            command = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            session, cpu = int(fields[3]), sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
            if session in self.replica_sessions:
                used["lightbox"] += cpu
            elif command == "weed":
                used["store"] += cpu
            elif command == "postgres":
                used["database"] += cpu
        return {part: value / ticks for part, value in used.items()}


def measure(
    name: str,
    url: str,
    files: tuple[Files, Files],
    render: Path,
    renders: int,
    counters: Counters | None,
    meter: CpuMeter,
) -> Result:
    """Uploads (small, then large) at concurrency 8, counted on the database; then repeated renders of ``render``."""
    small, large = files
    result = Result(name)
    statements = transactions = 0
    for label, batch in (("upload small", small), ("upload 3.6 MB", large)):
        before = counters.read() if counters else (0, 0)
        cpu_start = meter.read()
        rate, latencies = asyncio.run(upload_all(url, batch, CONCURRENCY))
        result.cpu_ms[label] = per_request(cpu_start, meter.read(), len(batch))
        after = counters.read() if counters else (0, 0)
        statements += after[0] - before[0] - 3  # our own three statements per read
        transactions += after[1] - before[1] - 3  # ours too, flushed when our connection ends
        result.rates[label], result.p50[label] = rate, statistics.median(latencies)
    if counters is not None:
        uploads = len(small) + len(large)
        result.statements_per_upload = statements / uploads
        result.transactions_per_upload = transactions / uploads

    async def repeated() -> tuple[float, list[float]]:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            stored = await client.post("/upload", files={"file": unique_copies(render, 1)[0]})
            stored.raise_for_status()
            target = f"/dicomFile/{stored.json()['name']}?png"
            await run_renders(client, [target] * CONCURRENCY, CONCURRENCY)  # every replica's cache warm
            cpu_before.update(meter.read())
            return await run_renders(client, [target] * renders, CONCURRENCY)

    cpu_before: dict[str, float] = {}
    rate, latencies = asyncio.run(repeated())
    result.cpu_ms["repeated render"] = per_request(cpu_before, meter.read(), renders)
    result.rates["repeated render"], result.p50["repeated render"] = rate, statistics.median(latencies)
    return result


def per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """CPU ms per request of each part; stops the run if the replicas' CPU was not seen (no figures rather than 0)."""
    spent = {part: (after[part] - before[part]) * 1000 / requests for part in after}
    if spent["lightbox"] <= 0:
        raise SystemExit("the replicas' CPU was not measured (no process of their sessions found in /proc)")
    return spent


@contextlib.contextmanager
def replicas(work: Path, count: int, env: dict[str, str]) -> Iterator[tuple[list[str], CpuMeter]]:
    """``count`` replicas (one worker each): their URLs and a meter of their CPU."""
    with contextlib.ExitStack() as stack:
        urls, sessions = [], []
        for number in range(count):
            folder = work / f"replica-{number}"
            folder.mkdir()
            server = stack.enter_context(run_server(folder, work / "storage", env={**env, "LIGHTBOX_WORKERS": "1"}))
            urls.append(server.url)
            sessions.append(server.process.pid)  # its own session (start_new_session): workers and sandboxes too
        yield urls, CpuMeter(sessions)


def table(results: list[Result]) -> str:
    base = results[0]
    labels = list(base.rates)
    lines = [
        "| topology | " + " | ".join(f"{label} /s (p50 ms)" for label in labels) + " | statements / upload "
        "| transactions / upload |",
        "|---|" + "---|" * (len(labels) + 2),
    ]
    for result in results:
        cells = [f"{result.rates[label]:.1f} ({result.p50[label]:.0f})" for label in labels]
        statements = f"{result.statements_per_upload:.1f}" if result.statements_per_upload is not None else "-"
        transactions = f"{result.transactions_per_upload:.1f}" if result.transactions_per_upload is not None else "-"
        lines.append(f"| {result.name} | " + " | ".join(cells) + f" | {statements} | {transactions} |")
    lines += ["", "| cost per request vs. 1 replica SQLite + folder | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---|" * len(labels))
    for result in results[1:]:
        ratios = [f"{base.rates[label] / result.rates[label]:.2f}x" for label in labels]
        lines.append(f"| {result.name} | " + " | ".join(ratios) + " |")
    lines += ["", "| CPU ms per request: lightbox / store / database | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---|" * len(labels))
    for result in results:
        cells = [
            " / ".join(f"{result.cpu_ms[label][part]:.1f}" for part in ("lightbox", "store", "database"))
            for label in labels
        ]
        lines.append(f"| {result.name} | " + " | ".join(cells) + " |")
    lines += ["", "| lightbox CPU per request vs. 1 replica SQLite + folder | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---|" * len(labels))
    for result in results[1:]:
        ratios = [f"{result.cpu_ms[label]['lightbox'] / base.cpu_ms[label]['lightbox']:.2f}x" for label in labels]
        lines.append(f"| {result.name} | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large-file", type=Path, help="a ~3.6 MB DICOM file (default: generated)")
    parser.add_argument("--small-count", type=int, default=160)
    parser.add_argument("--large-count", type=int, default=40)
    parser.add_argument("--renders", type=int, default=160)
    parser.add_argument("--shared-storage", choices=("s3", "folder"), default="s3", help="for the PostgreSQL runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lightbox-scale-") as temp:
        work = Path(temp)
        large_path = args.large_file or large_dicom(work)

        def files() -> tuple[Files, Files]:
            small = unique_copies(sample("CT_small.dcm"), args.small_count)
            return small, unique_copies(large_path, args.large_count)

        results = []
        sqlite = work / "sqlite"
        sqlite.mkdir()
        with replicas(sqlite, 1, {"LIGHTBOX_LOG_LEVEL": "warning"}) as ((url,), meter):
            results.append(measure("1 replica, SQLite + folder", url, files(), large_path, args.renders, None, meter))
        with (
            postgres.throwaway_cluster(PG_OPTIONS) as cluster,
            contextlib.ExitStack() as stack,
        ):
            storage_name = "S3" if args.shared_storage == "s3" else "shared folder"
            endpoint = stack.enter_context(seaweedfs.throwaway_seaweedfs()) if args.shared_storage == "s3" else ""
            for count in (1, 2):
                database = stack.enter_context(postgres.fresh_database(cluster.url))
                env = {"LIGHTBOX_DATABASE_URL": database, "LIGHTBOX_LOG_LEVEL": "warning"}
                if args.shared_storage == "s3":
                    bucket = stack.enter_context(seaweedfs.fresh_bucket(seaweedfs.client(endpoint)))
                    env |= {
                        "LIGHTBOX_STORAGE_URL": f"s3://{bucket}/instances",
                        "LIGHTBOX_S3_ENDPOINT_URL": endpoint,
                        "AWS_ACCESS_KEY_ID": seaweedfs.TEST_CREDENTIALS["aws_access_key_id"],
                        "AWS_SECRET_ACCESS_KEY": seaweedfs.TEST_CREDENTIALS["aws_secret_access_key"],
                        "AWS_DEFAULT_REGION": "us-east-1",
                    }
                folder = work / f"pg-{count}"
                folder.mkdir()
                urls, meter = stack.enter_context(replicas(folder, count, env))
                if count == 1:
                    url, name = urls[0], f"1 replica, PostgreSQL + {storage_name}"
                else:
                    upstreams = [u.removeprefix("http://") for u in urls]
                    url = stack.enter_context(nginx.running_nginx(upstreams, folder / "nginx")).url
                    name = f"2 replicas + nginx, PostgreSQL + {storage_name}"
                results.append(measure(name, url, files(), large_path, args.renders, Counters(database), meter))
    print(table(results))


if __name__ == "__main__":
    main()
