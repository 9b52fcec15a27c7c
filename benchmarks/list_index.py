"""Listing speed with a large index: generate N instances (default 100,000), then time GET /dicomFile.

    .venv/bin/python -m benchmarks.list_index --storage /tmp/lightbox-list-bench --instances 100000

Rows are generated straight into the index tables (one transaction, executemany): the shape of
a real archive (100 instances per series, 2 series per study, 5 studies per patient), not files.
Timings go through the real app over ASGI (FastAPI, SQLAlchemy, aiosqlite): p50/p90 per query.

It checks that it measured what it claims: the index holds exactly ``--instances`` rows, and every
query's ``total`` and page length equal what the generated rows say (computed here, in Python);
otherwise it stops with an error. (The rows have no files, so the service reports its storage as
looking wrong and /readyz is 503: lists are answered from the index all the same, and start-up
deletes nothing; before issue 19 it silently forgot every row and timed an empty index.)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.index.schema import instances, patients, series, studies
from app.index.sql import SqlInstanceIndex
from app.main import create_app, database_url

PER_SERIES, SERIES_PER_STUDY, STUDIES_PER_PATIENT = 100, 2, 5
MODALITIES = ["CT", "MR", "CR", "DX", "US", "PT"]
HEADER = '{"00080060":{"vr":"CS","Value":["CT"]}}'


Rows = dict[str, list[dict[str, Any]]]


def build_rows(count: int) -> Rows:
    """The generated archive, the same for the same ``count`` (seeded), table by table."""
    rng = random.Random(7)
    rows_patients: list[dict[str, Any]] = []
    rows_studies: list[dict[str, Any]] = []
    rows_series: list[dict[str, Any]] = []
    rows_instances: list[dict[str, Any]] = []
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
    return {"patients": rows_patients, "studies": rows_studies, "series": rows_series, "instances": rows_instances}


async def generate(settings: Settings, rows: Rows) -> float:
    index = await SqlInstanceIndex.open(database_url(settings))
    started = time.perf_counter()
    async with index.engine.begin() as conn:
        for table in (patients, studies, series, instances):
            chunk = rows[table.name]
            for start in range(0, len(chunk), 10_000):
                await conn.execute(table.insert(), chunk[start : start + 10_000])
    elapsed = time.perf_counter() - started
    await index.close()
    return elapsed


def expected_totals(rows: Rows) -> dict[str, int]:
    """Each query's ``total``, counted from the generated rows (DICOM matching rules, PS3.4 C.2.2.2)."""
    study_of = {s["id"]: s for s in rows["studies"]}
    patient_of = {p["id"]: p for p in rows["patients"]}
    facts = []
    for item in rows["instances"]:
        one_series = rows["series"][item["series_pk"] - 1]
        study = study_of[one_series["study_pk"]]
        facts.append((item["modality"], study, patient_of[study["patient_pk"]]))

    def count(match: Callable[[str, dict[str, Any], dict[str, Any]], bool]) -> int:
        return sum(1 for modality, study, patient in facts if match(modality, study, patient))

    def in_year(date: str, year: str) -> bool:
        return f"{year}0101" <= date <= f"{year}1231"

    return {
        "newest 100": len(facts),
        "PatientID exact": count(lambda m, s, p: p["patient_id"] == "PID000042"),
        "PatientID wildcard": count(lambda m, s, p: p["patient_id"].startswith("PID0001")),
        "PatientName wildcard": count(lambda m, s, p: p["patient_name"].lower().startswith("smith")),
        "Modality": count(lambda m, s, p: m == "MR"),
        "StudyDate range": count(lambda m, s, p: in_year(s["study_date"], "2015")),
        "Modality+StudyDate": count(lambda m, s, p: m == "CT" and in_year(s["study_date"], "2020")),
        "StudyInstanceUID": count(lambda m, s, p: s["study_instance_uid"] == "1.2.826.0.1.3680043.10.1.77"),
        "offset 50000": len(facts),
    }


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


class NotMeasured(SystemExit):
    """The benchmark measured something other than what it claims: its figures must not be used."""


async def measure(settings: Settings, repeats: int, expected: dict[str, int]) -> None:
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
            body = response.json()
            total, shown = body["total"], len(body["data"])
            offset = int(params.get("offset", 0))
            if total != expected[label] or shown != max(0, min(100, total - offset)):
                raise NotMeasured(
                    f"{label}: total={total}, {shown} rows shown, but the generated index holds {expected[label]} "
                    "matches: these timings are not of the claimed query"
                )
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
    rows = build_rows(args.instances)
    if not (args.storage / "index.sqlite3").exists():
        seconds = asyncio.run(generate(settings, rows))
        print(f"generated {args.instances} instances in {seconds:.1f} s")
    held = asyncio.run(count_instances(settings))
    if held != args.instances:
        raise NotMeasured(f"{args.storage} holds {held} instances, not {args.instances}: use a new --storage")
    asyncio.run(measure(settings, args.repeats, expected_totals(rows)))


async def count_instances(settings: Settings) -> int:
    index = await SqlInstanceIndex.open(database_url(settings))
    try:
        return (await index.counts())["instances"]
    finally:
        await index.close()


if __name__ == "__main__":
    main()
