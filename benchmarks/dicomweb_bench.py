"""DICOMweb side by side: Lightbox against Orthanc's DICOMweb plugin, both loaded with the same instances,
measured in one interleaved run (each phase on each server back to back, the order alternating per repeat).

    eval "$(../shared/bench/start_orthanc.sh)"          # loopback-only Orthanc + orthanc-dicomweb
    LIGHTBOX_WORKERS=2 LIGHTBOX_PORT=8100 LIGHTBOX_STORAGE_DIR=/tmp/lb-bench lightbox &
    python -m benchmarks.dicomweb_bench --ours http://127.0.0.1:8100 --orthanc "$ORTHANC_URL" \\
        --ours-pid <lightbox pid> --orthanc-pid "$ORTHANC_PID"

Generated data (small synthetic CT files, Explicit VR Little Endian): one study whose series holds
``--series-size`` 256 x 256 instances, and enough 16 x 16 instances in many other studies (2 series of 5
each) to reach ``--instances`` in all. Both servers get every instance through STOW-RS (untimed) and must
then answer each checked query with the same studies, or the run stops instead of printing figures.

Phases: QIDO-RS study searches (patient name prefix, patient ID, date range, modality, a page) at
concurrency 4; the series' metadata (every instance's header) at 2; frame retrieval (``multipart/related;
type="application/octet-stream"``) over every instance of the series at 4; the rendered frame (JPEG) at 4,
each repeat on instances not rendered before (Lightbox's render cache stays cold, as Orthanc has none).
Per phase: requests/s (median over repeats) and, with the PIDs, server CPU ms per request (the process and
its descendants, from /proc); the ratio is ours/Orthanc throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = "/dicom-web"
OCTETS = 'multipart/related; type="application/octet-stream"'
CLOCK = os.sysconf("SC_CLK_TCK")


class NotMeasured(SystemExit):
    """The run measured something other than what it reports: its figures must not be used."""


@dataclass(frozen=True)
class Layout:
    """The generated data: the big series' UIDs and each instance's place."""

    study: str
    series: str
    instances: list[str]
    total: int


def instance(
    study: str, series: str, number: int, size: int, patient: int, day: int, modality: str
) -> tuple[str, bytes]:
    """A small CT-like Part 10 file (PS3.10 7.1) with the attributes a study list shows, and its SOP UID."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = f"Bench^P{patient:05d}", f"PID{patient:05d}"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyDate = ds.SeriesDate = f"{2015 + day // 360}{1 + day % 360 // 30:02d}{1 + day % 30 % 28:02d}"
    ds.StudyTime, ds.AccessionNumber, ds.StudyID = "120000", f"ACC{patient:06d}", "1"
    ds.StudyDescription, ds.SeriesDescription = "Benchmark study", f"Series {modality}"
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 1, number
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, number], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth, ds.RescaleIntercept, ds.RescaleSlope = 1000, 2000, 0, 1
    ramp = np.add.outer(np.arange(size), np.arange(size)) * (4000 // (2 * size)) + number
    ds.PixelData = ramp.astype("<u2").tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return str(ds.SOPInstanceUID), out.getvalue()


def generate(total: int, series_size: int) -> tuple[Layout, Iterator[list[bytes]]]:
    """The layout, and the files in STOW batches (each batch one study, so either server takes it whole)."""
    big_study, big_series = generate_uid(), generate_uid()
    numbers = list(range(1, series_size + 1))
    uids: list[str] = []

    def batches() -> Iterator[list[bytes]]:
        for start in range(0, series_size, 50):
            made = [instance(big_study, big_series, n, 256, 0, 0, "CT") for n in numbers[start : start + 50]]
            uids.extend(uid for uid, _ in made)
            yield [data for _, data in made]
        remaining, study_number = total - series_size, 0
        while remaining > 0:
            study_number += 1
            study, modality = generate_uid(), ("CT", "MR", "US")[study_number % 3]
            batch: list[bytes] = []
            for series_number in range(2):
                series = generate_uid()
                for n in range(1, 6):
                    if remaining - len(batch) > 0:
                        patient, day = study_number % 2000, study_number * 37 % 3600
                        _, data = instance(study, series, n + 5 * series_number, 16, patient, day, modality)
                        batch.append(data)
            remaining -= len(batch)
            yield batch

    layout = Layout(big_study, big_series, uids, total)
    return layout, batches()


def stow_body(files: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f + b"\r\n" for f in files]
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


async def patient(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """``send()``, again when the server had closed the kept-alive connection (Orthanc drops idle ones after 1 s)."""
    for attempt in range(3):
        try:
            return await send()
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def load(clients: dict[str, httpx.AsyncClient], batches: Iterator[list[bytes]]) -> int:
    """STOW-RS every batch to every server, 4 batches in flight; the number of instances stored."""
    stored = 0
    pending: list[list[bytes]] = []

    async def send(files: list[bytes]) -> None:
        body, content_type = stow_body(files)
        for name, client in clients.items():
            post = partial(client.post, f"{ROOT}/studies", content=body, headers={"Content-Type": content_type})
            answer = await patient(post)
            if answer.status_code != 200:
                raise NotMeasured(f"{name} STOW answered {answer.status_code}: {answer.text[:300]}")

    for files in batches:
        pending.append(files)
        stored += len(files)
        if len(pending) == 4:
            await asyncio.gather(*(send(p) for p in pending))
            pending = []
            print(f"\rloaded {stored}", end="", flush=True)
    await asyncio.gather(*(send(p) for p in pending))
    print(f"\rloaded {stored}")
    return stored


def tree_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of ``pid`` and its live descendants (/proc/<pid>/stat fields 14-17)."""
    if pid is None:
        return 0.0
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / CLOCK)
    wanted, total = {pid}, 0.0
    changed = True
    while changed:
        changed = False
        for child, (parent, _) in stats.items():
            if parent in wanted and child not in wanted:
                wanted.add(child)
                changed = True
    for member in wanted:
        total += stats.get(member, (0, 0.0))[1]
    return total


@dataclass
class Phase:
    name: str
    concurrency: int
    requests: Callable[[int], list[tuple[str, dict[str, str]]]]  # repeat -> (path, headers) per request
    check: Callable[[httpx.Response], None]
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)


async def run_phase(client: httpx.AsyncClient, phase: Phase, repeat: int, pid: int | None) -> tuple[float, float]:
    queue = list(reversed(phase.requests(repeat)))
    count = len(queue)

    async def worker() -> None:
        while queue:
            path, headers = queue.pop()
            answer = await patient(partial(client.get, path, headers=headers))
            if answer.status_code != 200:
                raise NotMeasured(f"{path} answered {answer.status_code}: {answer.text[:200]}")
            phase.check(answer)

    cpu = tree_cpu_seconds(pid)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(phase.concurrency)))
    elapsed = time.perf_counter() - start
    return count / elapsed, (tree_cpu_seconds(pid) - cpu) * 1e3 / count


QUERIES = [
    "PatientName=Bench*P0004*",  # no %5E: Orthanc does not percent-decode QIDO values
    "PatientID=PID00042",
    "StudyDate=20180101-20180331",
    "ModalitiesInStudy=MR&limit=50",
    "limit=100&offset=200",
]


async def discover(client: httpx.AsyncClient, total: int) -> Layout:
    """The layout of data loaded by an earlier run (``--reuse``): the big series is patient ``PID00000``'s."""
    (study,) = [
        item["0020000D"]["Value"][0] for item in (await client.get(f"{ROOT}/studies?PatientID=PID00000")).json()
    ]
    (series,) = [item["0020000E"]["Value"][0] for item in (await client.get(f"{ROOT}/studies/{study}/series")).json()]
    found = (
        await client.get(f"{ROOT}/studies/{study}/series/{series}/instances?includefield=00200013&limit=1000")
    ).json()
    found.sort(key=lambda item: item["00200013"]["Value"][0])
    return Layout(study, series, [item["00080018"]["Value"][0] for item in found], total)


def study_uids(answer: httpx.Response) -> set[str]:
    return {item["0020000D"]["Value"][0] for item in answer.json()}


async def check_same(clients: dict[str, httpx.AsyncClient], layout: Layout) -> None:
    """Both servers hold the same data: the same studies per search, 300 headers in the series' metadata."""
    for query in QUERIES:
        found = {name: study_uids(await c.get(f"{ROOT}/studies?{query}")) for name, c in clients.items()}
        ours, orthanc = found.values()
        paged = "offset" in query or "limit" in query
        if (len(ours) != len(orthanc)) if paged else (ours != orthanc) or not ours:
            raise NotMeasured(f"{query}: the servers found {[len(f) for f in found.values()]} studies")
        print(f"  {query:<34} {len(ours)} studies on both")
    for name, client in clients.items():
        answer = await client.get(f"{ROOT}/studies/{layout.study}/series/{layout.series}/metadata")
        if len(answer.json()) != len(layout.instances):
            raise NotMeasured(f"{name} series metadata has {len(answer.json())} instances")


def phases(layout: Layout, render_per_repeat: int) -> list[Phase]:
    base = f"{ROOT}/studies/{layout.study}/series/{layout.series}"
    frame_bytes = 256 * 256 * 2

    def searches(repeat: int) -> list[tuple[str, dict[str, str]]]:
        return [(f"{ROOT}/studies?{q}", {"Accept": "application/dicom+json"}) for q in QUERIES * 40]

    def metadata(repeat: int) -> list[tuple[str, dict[str, str]]]:
        return [(f"{base}/metadata", {"Accept": "application/dicom+json"})] * 10

    def frames(repeat: int) -> list[tuple[str, dict[str, str]]]:
        return [(f"{base}/instances/{uid}/frames/1", {"Accept": OCTETS}) for uid in layout.instances]

    def rendered(repeat: int) -> list[tuple[str, dict[str, str]]]:
        chosen = layout.instances[repeat * render_per_repeat : (repeat + 1) * render_per_repeat]
        return [(f"{base}/instances/{uid}/frames/1/rendered", {"Accept": "image/jpeg"}) for uid in chosen]

    def json_list(answer: httpx.Response) -> None:
        if not isinstance(answer.json(), list):
            raise NotMeasured(f"{answer.url} is not a DICOM JSON array")

    def series_metadata(answer: httpx.Response) -> None:
        if len(answer.json()) != len(layout.instances):
            raise NotMeasured(f"{answer.url} lists {len(answer.json())} instances")

    def one_frame(answer: httpx.Response) -> None:
        if not answer.headers["content-type"].startswith("multipart/related") or len(answer.content) < frame_bytes:
            raise NotMeasured(f"{answer.url} answered {len(answer.content)} bytes of {answer.headers['content-type']}")

    def jpeg(answer: httpx.Response) -> None:
        if not answer.content.startswith(b"\xff\xd8"):
            raise NotMeasured(f"{answer.url} is not a JPEG ({answer.headers.get('content-type')})")

    return [
        Phase("qido_studies_c4", 4, searches, json_list),
        Phase("series_metadata_300_c2", 2, metadata, series_metadata),
        Phase("frames_c4", 4, frames, one_frame),
        Phase("rendered_frame_c4", 4, rendered, jpeg),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ours", default="http://127.0.0.1:8100")
    parser.add_argument("--orthanc", default="http://127.0.0.1:8042")
    parser.add_argument("--ours-pid", type=int)
    parser.add_argument("--orthanc-pid", type=int)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--series-size", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="measure the data an earlier run loaded (no load)")
    args = parser.parse_args()
    for url in (args.ours, args.orthanc):
        if httpx.URL(url).host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"{url}: loopback servers only")
    pids = {"ours": args.ours_pid, "orthanc": args.orthanc_pid}
    limits = httpx.Limits(max_connections=8)
    async with (
        httpx.AsyncClient(base_url=args.ours, timeout=300, limits=limits) as ours,
        httpx.AsyncClient(base_url=args.orthanc, timeout=300, limits=limits) as orthanc,
    ):
        clients = {"ours": ours, "orthanc": orthanc}
        if args.reuse:
            layout = await discover(ours, args.instances)
        else:
            layout, batches = generate(args.instances, args.series_size)
            started = time.perf_counter()
            if await load(clients, batches) != args.instances:
                raise NotMeasured("the generator made a different number of instances")
            print(f"both loaded with {args.instances} instances in {time.perf_counter() - started:.0f} s")
        await check_same(clients, layout)
        render_per_repeat = len(layout.instances) // args.repeats
        measured = phases(layout, render_per_repeat)
        for repeat in range(args.repeats):
            order = ["ours", "orthanc"] if repeat % 2 == 0 else ["orthanc", "ours"]
            for phase in measured:
                for name in order:
                    per_second, cpu_ms = await run_phase(clients[name], phase, repeat, pids[name])
                    phase.rates.setdefault(name, []).append(per_second)
                    phase.cpu.setdefault(name, []).append(cpu_ms)
                    line = f"repeat {repeat} {phase.name:<24} {name:<8} {per_second:8.1f} req/s"
                    print(f"{line}  {cpu_ms:7.1f} ms CPU/req")
    print()
    print("| phase | Lightbox req/s | Orthanc req/s | ratio (ours/Orthanc) | CPU ms/req ours / Orthanc |")
    print("|---|---|---|---|---|")
    for phase in measured:
        rate = {name: statistics.median(values) for name, values in phase.rates.items()}
        cpu = {name: statistics.median(values) for name, values in phase.cpu.items()}
        cpu_text = f"{cpu['ours']:.1f} / {cpu['orthanc']:.1f}" if all(pids.values()) else "-"
        print(
            f"| {phase.name} | {rate['ours']:.1f} | {rate['orthanc']:.1f} | "
            f"**{rate['ours'] / rate['orthanc']:.2f}** | {cpu_text} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
