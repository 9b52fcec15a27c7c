"""Listing speed with a large index: generate N instances (default 100,000), then time GET /dicomFile.

    .venv/bin/python -m benchmarks.list_index --storage /tmp/lightbox-list-bench --instances 100000

Rows are generated straight into the index tables (one transaction, executemany): the shape of
a real archive (100 instances per series, 2 series per study, 5 studies per patient), not files.
Timings go through the real app over ASGI (FastAPI, SQLAlchemy, aiosqlite): p50/p90 per query.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path

import httpx

from app.config import Settings
from app.index.schema import instances, patients, series, studies
from app.index.sql import SqlInstanceIndex
from app.main import create_app, database_url

PER_SERIES, SERIES_PER_STUDY, STUDIES_PER_PATIENT = 100, 2, 5
MODALITIES = ["CT", "MR", "CR", "DX", "US", "PT"]
HEADER = '{"00080060":{"vr":"CS","Value":["CT"]}}'


async def generate(settings: Settings, count: int) -> float:
    index = await SqlInstanceIndex.open(database_url(settings))
    started = time.perf_counter()
    rng = random.Random(7)
    rows_patients, rows_studies, rows_series, rows_instances = [], [], [], []
    series_count = (count + PER_SERIES - 1) // PER_SERIES
    study_count = (series_count + SERIES_PER_STUDY - 1) // SERIES_PER_STUDY
    patient_count = (study_count + STUDIES_PER_PATIENT - 1) // STUDIES_PER_PATIENT
    names = ["SMITH", "JONES", "GARCIA", "MILLER", "DAVIS", "MARTIN", "LEE", "WALKER"]
    for p in range(1, patient_count + 1):
        rows_patients.append(
            {
                "id": p,
                "owner": "local",
                "patient_id": f"PID{p:06d}",
                "patient_name": f"{rng.choice(names)}^{p}",
                "patient_birth_date": "19700101",
            }
        )
    for s in range(1, study_count + 1):
        rows_studies.append(
            {
                "id": s,
                "owner": "local",
                "patient_pk": (s - 1) // STUDIES_PER_PATIENT + 1,
                "study_instance_uid": f"1.2.826.0.1.3680043.10.1.{s}",
                "study_date": f"20{rng.randint(10, 24):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                "study_description": "",
                "accession_number": f"A{s}",
                "modalities_in_study": "",
            }
        )
    for r in range(1, series_count + 1):
        rows_series.append(
            {
                "id": r,
                "owner": "local",
                "study_pk": (r - 1) // SERIES_PER_STUDY + 1,
                "series_instance_uid": f"1.2.826.0.1.3680043.10.2.{r}",
                "modality": rng.choice(MODALITIES),
                "series_number": r % SERIES_PER_STUDY + 1,
            }
        )
    base_us = 1_700_000_000_000_000
    for i in range(1, count + 1):
        rows_instances.append(
            {
                "id": i,
                "owner": "local",
                "series_pk": (i - 1) // PER_SERIES + 1,
                "name": f"00000000-0000-4000-8000-{i:012d}-gen.dcm",
                "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
                "sop_instance_uid": f"1.2.826.0.1.3680043.10.3.{i}",
                "instance_number": i % PER_SERIES + 1,
                "rows": 512,
                "columns": 512,
                "number_of_frames": None,
                "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                "size": 525_000,
                "sha256": f"{i:064x}",
                "uploaded_at_us": base_us + i * 1000,
                "header": HEADER,
                "modality": rows_series[(i - 1) // PER_SERIES]["modality"],  # as the index copies it
            }
        )
    async with index.engine.begin() as conn:
        for table, rows in (
            (patients, rows_patients),
            (studies, rows_studies),
            (series, rows_series),
            (instances, rows_instances),
        ):
            for start in range(0, len(rows), 10_000):
                await conn.execute(table.insert(), rows[start : start + 10_000])
    elapsed = time.perf_counter() - started
    await index.close()
    return elapsed


QUERIES = {
    "newest 100": {},
    "PatientID exact": {"PatientID": "PID000042"},
    "PatientID wildcard": {"PatientID": "PID0001*"},
    "PatientName wildcard": {"PatientName": "smith*"},
    "Modality": {"Modality": "MR"},
    "StudyDate range": {"StudyDate": "20150101-20151231"},
    "Modality+StudyDate": {"Modality": "CT", "StudyDate": "20200101-20201231"},
    "StudyInstanceUID": {"StudyInstanceUID": "1.2.826.0.1.3680043.10.1.77"},
    "offset 50000": {"offset": "50000"},
}


async def measure(settings: Settings, repeats: int) -> None:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
    ):
        for label, params in QUERIES.items():
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                response = await client.get("/dicomFile", params=params)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            total = response.json()["total"]
            timings.sort()
            print(
                f"{label:22s} total={total:6d}  p50={statistics.median(timings):6.2f} ms  "
                f"p90={timings[int(len(timings) * 0.9)]:6.2f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", type=Path, required=True)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    settings = Settings(storage_dir=args.storage)
    args.storage.mkdir(parents=True, exist_ok=True)
    if not (args.storage / "index.sqlite3").exists():
        seconds = asyncio.run(generate(settings, args.instances))
        print(f"generated {args.instances} instances in {seconds:.1f} s")
    asyncio.run(measure(settings, args.repeats))


if __name__ == "__main__":
    main()
