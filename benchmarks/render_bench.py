"""In-process benchmark of the render pipeline: decode -> display -> encode, no HTTP.

    python -m benchmarks.render_bench FILE [--reps 15] [--levels 0,1,3,6] [--workers 2] [--jobs 24]

Prints the median/min time of each stage and of the whole render per PNG level (levels 0-3 use
ISA-L, 4-9 zlib via Pillow), JPEG q=90, a 256-px thumbnail, and the throughput of ``--jobs``
renders on a thread pool and on a process pool of ``--workers`` each, to compare threads with
processes. Each render must be a PNG of the file's Rows x Columns, or the run stops with an error.
Compare the "render total" rows with ``../shared/bench/floor.py`` at the same level.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from pydicom import dcmread

from app.dicom.encode import encode_jpeg, encode_png, fit_within
from app.dicom.ingest import read_header
from app.dicom.pixels import decode_frame
from app.dicom.render import to_display

BUDGET = 1 << 30


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, float, Any]:
    samples, out = [], None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples), out


class NotMeasured(SystemExit):
    """The run measured something other than what it reports: its figures must not be used."""


def render_once(path: str, level: int) -> int:
    """What RenderService does on a cold render, header parse included; the PNG's size."""
    file = Path(path)
    header = read_header(file)
    image = to_display(decode_frame(file, header, 0, BUDGET), header, 0)
    png = encode_png(image, level)
    if not png.startswith(b"\x89PNG\r\n\x1a\n") or image.shape[:2] != (header.Rows, header.Columns):
        raise NotMeasured(f"the render of {file.name} is not a {header.Rows} x {header.Columns} PNG")
    return len(png)


def pool_rate(make: Callable[[int], Executor], workers: int, path: str, level: int, jobs: int) -> float:
    with make(workers) as pool:
        list(pool.map(render_once, [path] * workers, [level] * workers))  # warm up workers
        start = time.perf_counter()
        done = list(pool.map(render_once, [path] * jobs, [level] * jobs))
        elapsed = time.perf_counter() - start
    if len(done) != jobs or not all(done):
        raise NotMeasured(f"{len(done)} renders finished, {jobs} claimed")
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--levels", default="0,1,3,6")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=24)
    args = parser.parse_args()
    path = Path(args.file)
    rows: list[tuple[str, float, float, int | None]] = []

    def row(label: str, fn: Callable[[], Any]) -> Any:
        median, best, out = timed(fn, args.reps)
        rows.append((label, median, best, len(out) if isinstance(out, bytes) else None))
        return out

    header = row("parse header (deferred pixels)", lambda: read_header(path))
    stored = row("decode frame 1", lambda: decode_frame(path, header, 0, BUDGET))
    image = row("modality -> VOI -> 8 bit", lambda: to_display(stored, header, 0))
    for level in (int(v) for v in args.levels.split(",")):
        row(f"encode PNG level {level}", partial(encode_png, image, level))
    row("encode JPEG q=90", lambda: encode_jpeg(image, 90))
    row("fit within 256 px", lambda: fit_within(image, 256))
    for level in (int(v) for v in args.levels.split(",")):
        row(f"render total, PNG level {level}", partial(render_once, str(path), level))

    print(f"file {path.name}: {dcmread(path, stop_before_pixels=True).get('Rows')} rows, reps={args.reps}")
    print(f"{'step':<40}{'median ms':>11}{'min ms':>9}{'bytes':>11}")
    for label, median, best, size in rows:
        print(f"{label:<40}{median:>11.2f}{best:>9.2f}{size if size is not None else '':>11}")
    level = 1
    one = pool_rate(ThreadPoolExecutor, 1, str(path), level, args.jobs)
    threads = pool_rate(ThreadPoolExecutor, args.workers, str(path), level, args.jobs)
    processes = pool_rate(ProcessPoolExecutor, args.workers, str(path), level, args.jobs)
    print(
        f"renders/s at PNG level {level}: 1 thread {one:.1f}, {args.workers} threads {threads:.1f}, "
        f"{args.workers} processes {processes:.1f}"
    )


if __name__ == "__main__":
    main()
